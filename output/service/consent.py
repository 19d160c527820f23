"""Marketing consent after a letter was queued: a withdrawn consent stops what has not gone yet.

Decisions:
- Consent is decided when a marketing letter is archived (output/service/policy.py), and again for every row
  that has not gone: when the customer's withdrawal is recorded (an outbox subscriber on
  `customer.consent_recorded` suppresses their queued rows, print-house rows included), and just before the
  dispatcher sends a row (for a row claimed meanwhile). A row already handed over is not called back.
- A portal row added for an SMS or email link shares that message's fate: it is judged by that channel's consent,
  and goes with it when the message is suppressed; once the message has gone (or is going), the letter it links
  to stays published.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from output import events as names
from output.models import HANDOVER, QUEUED, SENDING, SUPPRESSED, Dispatch, Letter
from output.service import policy
from output.service.letters import add_event, refresh_status
from repository import audit
from repository.config import Settings, get_settings
from repository.models import Customer, OutboxEvent
from repository.types import utcnow

ACTOR = "system:dispatcher"
SUBSCRIBER = "system:consent"  # the outbox subscriber acting on a recorded withdrawal


def consent_withdrawn(session: Session, settings: Settings, row: Dispatch, letter: Letter) -> str | None:
    """Why the row may no longer go (the customer withdrew the marketing consent its channel needs), or None."""
    linked = next((c for c in policy.LINKING_CHANNELS
                   if row.channel == policy.PORTAL and row.reason == policy.portal_reason(c)), None)
    if linked is not None:
        message = session.execute(select(Dispatch.state, Dispatch.provider_ref).where(
            Dispatch.letter_id == letter.id, Dispatch.channel == linked)).first()
        if message is not None and (message.state not in (QUEUED, SENDING, SUPPRESSED)
                                    or (message.provider_ref or "").startswith(HANDOVER)):
            return None  # the message (and its link) went, or was handed over: the letter it points to stays
    customer = session.get(Customer, letter.customer_id)
    if not policy.marketing_refused(session, settings, letter.category, customer, linked or row.channel):
        return None
    if linked is not None:
        return f"the {linked} message it was added for is suppressed"
    return f"marketing consent for {row.channel} withdrawn before the letter was sent"


def suppress(session: Session, row: Dispatch, letter: Letter, reason: str, *, actor: str = ACTOR) -> None:
    """Mark a row suppressed with the reason, on the customer's timeline and in the audit trail."""
    row.state, row.lease_until, row.next_attempt_at, row.reason = SUPPRESSED, None, None, reason[:500]
    row.updated_at = utcnow()
    add_event(session, row, letter, SUPPRESSED, reason)
    audit.record(session, actor=actor, action=names.DISPATCH_SUPPRESSED, object_type="dispatch", object_id=row.id,
                 details={"letter_id": letter.id, "channel": row.channel, "detail": reason})


def on_consent_recorded(session: Session, event: OutboxEvent) -> None:
    """Outbox subscriber: a marketing consent withdrawn suppresses the customer's queued marketing rows that it
    no longer covers (idempotent: suppressed rows are no longer queued)."""
    payload = event.payload
    if payload.get("granted") or not str(payload.get("purpose", "")).startswith(policy.MARKETING_CONSENT):
        return
    settings = get_settings()
    marketing = policy.categories(settings.marketing_categories)
    rows = session.execute(select(Dispatch, Letter).join(Letter, Letter.id == Dispatch.letter_id).where(
        Letter.customer_id == payload["customer_id"], Letter.category.in_(marketing), Dispatch.state == QUEUED)
        .order_by(Dispatch.id).with_for_update(of=Dispatch)).all()
    touched: dict[str, Letter] = {}
    for row, letter in rows:
        if (reason := consent_withdrawn(session, settings, row, letter)) is not None:
            suppress(session, row, letter, reason, actor=SUBSCRIBER)
            touched[letter.id] = letter
    for letter in touched.values():
        refresh_status(session, letter)
