"""What providers report after a send: SMS delivery receipts and email bounces, applied to the dispatch ledger.

Decisions:
- A receipt or bounce changes a row only while its outcome is open (`sent`, `sending`; a delivered receipt also
  settles a `queued` row, whose earlier attempt did reach the provider): the same report twice, or a late one
  after the row settled, changes nothing, so providers may retry freely.
- A failed SMS receipt and a hard email bounce are both `bounced` (the provider took the message and later
  reported it undeliverable; `failed` means Postroom could not hand it over) and queue the category's fallback,
  through dispatch.record_bounce like a DSN.
- A soft bounce changes no state: the relay retries by itself and reports a hard bounce if it gives up. It is
  noted once on the customer's timeline (`soft_bounced` delivery event) so the help desk sees it.
- A report for no letter of ours is IGNORED, not an error: answering an error would make the provider retry it
  forever.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from output.channels import DELIVERED, FAILED
from output.channels._email import letter_id_from_message_id, parse_bounce
from output.channels._sms import Receipt
from output.models import QUEUED, SENDING, SENT, DeliveryEvent, Dispatch, Letter
from output.service.dispatch import record_bounce
from output.service.letters import add_event, refresh_status
from repository import audit
from repository.db import is_postgres
from repository.errors import AuthenticationError, InvalidInputError
from repository.types import utcnow

ACTOR = "system:webhook"
SOFT_BOUNCED = "soft_bounced"
APPLIED, UNCHANGED, NOTED, IGNORED = "applied", "unchanged", "noted", "ignored"


class WebhookSignatureError(AuthenticationError):
    """A webhook request is not signed with the configured secret, or its signature is too old."""

    title = "Invalid webhook signature"


@dataclass(frozen=True)
class Outcome:
    """What a report did: applied, unchanged (seen before, or the row had settled), noted, or ignored (not ours)."""

    result: str
    letter_id: str | None = None
    channel: str | None = None
    state: str | None = None


def _outcome(result: str, row: Dispatch | None) -> Outcome:
    if row is None:
        return Outcome(IGNORED)
    return Outcome(result, row.letter_id, row.channel, row.state)


def _row(session: Session, *conditions) -> Dispatch | None:  # noqa: ANN002
    stmt = select(Dispatch).where(*conditions)
    if is_postgres(session):
        stmt = stmt.with_for_update()
    return session.execute(stmt).scalars().first()


def apply_sms_receipt(session: Session, *, receipt: Receipt) -> Outcome:
    """Apply an SMS delivery receipt: delivered settles the row, failed bounces it and queues the fallback."""
    row = None
    if receipt.reference:
        row = _row(session, Dispatch.channel == "sms", Dispatch.idempotency_key == receipt.reference)
    if row is None:
        row = _row(session, Dispatch.channel == "sms", Dispatch.provider_ref == receipt.provider_ref)
    if row is None:
        return _outcome(IGNORED, None)
    if receipt.status == FAILED and row.state in (SENT, SENDING):
        record_bounce(session, letter_id=row.letter_id, channel="sms", detail=f"SMS provider: {receipt.detail}")
        return _outcome(APPLIED, row)
    if receipt.status != DELIVERED or row.state not in (SENT, SENDING, QUEUED):
        return _outcome(UNCHANGED, row)
    letter = session.get(Letter, row.letter_id)
    now = utcnow()
    row.state, row.delivered_at, row.sent_at = DELIVERED, now, row.sent_at or now
    row.next_attempt_at, row.lease_until, row.updated_at = None, None, now
    row.provider_ref = row.provider_ref or receipt.provider_ref[:500]
    add_event(session, row, letter, DELIVERED, f"SMS provider: {receipt.detail}")
    refresh_status(session, letter)
    audit.record(session, actor=ACTOR, action="letter.dispatch_delivered", object_type="dispatch", object_id=row.id,
                 details={"letter_id": letter.id, "channel": row.channel, "provider_ref": row.provider_ref})
    return _outcome(APPLIED, row)


def _email_row(session: Session, letter_id: str | None, message_id: str | None) -> Dispatch | None:
    if message_id:
        message_id = message_id.strip()
        if not message_id.startswith("<"):
            message_id = f"<{message_id}>"
        row = _row(session, Dispatch.channel == "email", Dispatch.provider_ref == message_id)
        if row is not None:
            return row
        letter_id = letter_id or letter_id_from_message_id(message_id)
    if not letter_id:
        return None
    return _row(session, Dispatch.channel == "email", Dispatch.letter_id == letter_id)


def apply_email_bounce(session: Session, *, hard: bool, reason: str, letter_id: str | None = None,
                       message_id: str | None = None) -> Outcome:
    """Apply a bounce of one of our emails, named by its Message-ID or letter id (see the module's decisions)."""
    row = _email_row(session, letter_id, message_id)
    if row is None:
        return _outcome(IGNORED, None)
    reason = " ".join(reason.split())[:1000] or ("hard bounce" if hard else "soft bounce")
    if hard:
        before = row.state
        record_bounce(session, letter_id=row.letter_id, channel="email", detail=reason)
        return _outcome(APPLIED if row.state != before else UNCHANGED, row)
    seen = session.execute(select(DeliveryEvent.id).where(
        DeliveryEvent.dispatch_id == row.id, DeliveryEvent.kind == SOFT_BOUNCED,
        DeliveryEvent.detail == reason).limit(1)).first()
    if seen is not None or row.state not in (SENT, SENDING):
        return _outcome(UNCHANGED, row)
    add_event(session, row, session.get(Letter, row.letter_id), SOFT_BOUNCED, reason)
    return _outcome(NOTED, row)


def apply_dsn(session: Session, *, raw: bytes) -> Outcome:
    """Apply a delivery status notification (RFC 3464); InvalidInputError when the body is no DSN at all."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    if not any(part.get_content_type() == "message/delivery-status" for part in message.walk()):
        raise InvalidInputError("the body is not a delivery status notification (no message/delivery-status part)")
    bounce = parse_bounce(raw)
    if bounce is None:  # a delay or success report, or a bounce of someone else's message
        return _outcome(IGNORED, None)
    return apply_email_bounce(session, letter_id=bounce.letter_id, hard=bounce.permanent,
                              reason=f"{bounce.status} {bounce.diagnostic}")
