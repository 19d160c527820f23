"""The dispatcher: claims due ledger rows, calls their channel, records the outcome, retries and falls back.

Decisions:
- Never twice: a row is moved to `sending` with a lease and attempts+1 in its own committed transaction BEFORE
  the channel is called; the outcome is recorded in another one, and only if the row is still `sending` (a
  second worker that took over an expired lease wins alone). A crash between the two leaves the row `sending`;
  when its lease expires it is sent again with the SAME idempotency key, which each channel makes recognisable:
  the email's Message-ID, the IPP job-name (the IPP channel finds the earlier job and does not print again), the
  SMS provider's Idempotency-Key. A row whose dispatcher stopped during every allowed attempt (a message that
  kills its dispatcher) fails without a fallback: its outcome is unknown, and a fallback could send it twice.
- Email has no way to ask the relay what it got, so its channel calls the row's commit point just before the
  end of data: the hand-over is committed (provider_ref `handover:<Message-ID>`) and only then is the final dot
  sent. A relay delivers nothing whose data never ended, so a crash before the dot sends nothing (the row is
  sent again); a row found with the hand-over recorded and its lease expired is marked `sent` (with a note) and
  never sent again, and a second dispatcher that took the row over meanwhile is refused at the commit point and
  records nothing. A lost answer to the dot counts as sent. What is left is a crash in the microseconds between
  that commit and writing the dot: the email is then marked sent but was not. That is the price of never
  sending twice; the note says so.
- Claims use FOR UPDATE SKIP LOCKED on PostgreSQL, so several dispatchers share the work.
- Failures: a retryable one is retried with exponential backoff (POSTROOM_DISPATCH_BACKOFF_SECONDS, doubled)
  until POSTROOM_DISPATCH_MAX_ATTEMPTS; then, or at once for a permanent failure or a bounce, the row is
  `failed`/`bounced` and the next channel of the category's fallback chain (POSTROOM_FALLBACK) is queued,
  skipping channels the customer cannot be reached on and channels the letter already has a row for.
- Every attempt counts: a row found `sending` with its lease expired (its dispatcher died mid-send) is sent again
  only while it has attempts left, else it fails without a fallback (see above); a message that cannot be prepared
  (its PDF unreadable, say) is a retryable failure, so no row loops for ever.
- A letter whose archived document was destroyed (erasure, disposition) fails its rows with the reason and falls
  back to nothing (output/service/archived.py). A fallback to SMS, or to email in a sensitive category, queues
  the portal row its link leads to (output/service/policy.py).
- Print rows are `sent` when the printer accepted the job and polled with `check` until delivered or failed
  (an aborted job is resubmitted like a retryable failure); without news for POSTROOM_DISPATCH_CHECK_GIVE_UP_HOURS
  the row fails. Email and SMS `sent` rows wait for bounces and receipts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import threading
from collections.abc import Callable
from html import escape

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from output import events as names
from output.channels import DELIVERED, SENT, ChannelError, Outgoing, Recipient, SendResult, get_channel
from output.channels._email import parse_bounce
from output.channels.base import TAKEN_OVER, failed
from output.models import BOUNCED, FAILED, HANDOVER, QUEUED, SENDING, SUPPRESSED, Dispatch, Letter
from output.service import messages, policy
from output.service.archived import archived_version, destroyed, fail_destroyed, fail_for_good
from output.service.consent import consent_withdrawn, suppress
from output.service.letters import add_event, refresh_status
from output.service.tracking import click_url, open_pixel_url, portal_url
from repository import audit, events
from repository.config import Settings, get_settings
from repository.db import get_engine, is_postgres, transaction
from repository.models import Customer
from repository.service import read_version
from repository.types import new_id, utcnow

log = logging.getLogger(__name__)

ACTOR = "system:dispatcher"
POLLED = frozenset({"print"})
SEND, CHECK = "send", "check"


def _lock(session: Session, dispatch_id: str) -> Dispatch | None:
    stmt = select(Dispatch).where(Dispatch.id == dispatch_id)
    if is_postgres(session):
        stmt = stmt.with_for_update()
    return session.execute(stmt).scalar_one_or_none()


def _due(now: dt.datetime, settings: Settings):  # noqa: ANN202
    due = or_(and_(Dispatch.state == QUEUED, Dispatch.next_attempt_at <= now),
              and_(Dispatch.state == SENDING, Dispatch.lease_until < now),
              and_(Dispatch.state == SENT, Dispatch.channel.in_(POLLED), Dispatch.next_attempt_at <= now))
    if settings.print_route == "house":  # print rows wait for the print run (service/print_house/)
        due = and_(due, Dispatch.channel != "print")
    return due


def _claim(engine: Engine, settings: Settings, limit: int) -> list[tuple[str, str]]:
    now = utcnow()
    lease = dt.timedelta(seconds=settings.dispatch_lease_seconds)
    # Look first without the write lock: an idle dispatcher must not take SQLite's one writer every poll.
    with transaction(engine, readonly=True) as session:
        if session.execute(select(Dispatch.id).where(_due(now, settings)).limit(1)).first() is None:
            return []
    with transaction(engine) as session:
        stmt = select(Dispatch).where(_due(now, settings)).order_by(Dispatch.next_attempt_at, Dispatch.id).limit(limit)
        if is_postgres(session):
            stmt = stmt.with_for_update(skip_locked=True)
        claims = []
        quiet = policy.quiet_until(settings, now)
        for row in session.execute(stmt).scalars().all():
            row.updated_at = now
            if row.channel == "sms" and row.state == QUEUED and quiet is not None:
                row.next_attempt_at = quiet  # a retry that falls in the quiet hours waits for the morning
                continue
            if row.state == SENT:
                row.next_attempt_at = now + lease  # the poll's lease: nobody else polls it meanwhile
                claims.append((row.id, CHECK))
                continue
            if row.state == SENDING and (row.provider_ref or "").startswith(HANDOVER):
                _unconfirmed(session, row, now)  # it was handed over when its dispatcher stopped: never twice
                continue
            if row.state == SENDING and row.attempts >= settings.dispatch_max_attempts:
                _stopped_too_often(session, settings, row)  # a send that kills its dispatcher must not loop
                continue
            row.state, row.attempts, row.lease_until = SENDING, row.attempts + 1, now + lease
            claims.append((row.id, SEND))
            refresh_status(session, session.get(Letter, row.letter_id))
        return claims


def _unconfirmed(session: Session, row: Dispatch, now: dt.datetime) -> None:
    """A row whose dispatcher stopped between recording the hand-over and hearing the relay's answer: the
    message was (almost surely) delivered, so it is `sent`, with a note, and never sent again."""
    row.state, row.sent_at, row.lease_until = SENT, now, None
    row.provider_ref = row.provider_ref[len(HANDOVER):]
    detail = "handed to the relay as its dispatcher stopped; the relay's answer was not heard, so it is not resent"
    letter = session.get(Letter, row.letter_id)
    add_event(session, row, letter, SENT, detail)
    refresh_status(session, letter)
    audit.record(session, actor=ACTOR, action="letter.dispatch_sent", object_type="dispatch", object_id=row.id,
                 details={"letter_id": letter.id, "channel": row.channel, "attempts": row.attempts,
                          "provider_ref": row.provider_ref, "detail": detail})


def _stopped_too_often(session: Session, settings: Settings, row: Dispatch) -> None:
    """A row whose dispatcher stopped (crashed, was killed) during each of its allowed attempts: it fails without a
    fallback, since the last attempt may have reached the customer (a fallback could send the letter twice); the
    failure says so, for the help desk to decide."""
    letter = session.get(Letter, row.letter_id)
    if destroyed(session, letter):
        fail_destroyed(session, row=row, letter=letter)
        return
    detail = (f"its dispatcher stopped during each of {row.attempts} attempt{'s' if row.attempts != 1 else ''} "
              "(the lease expired without an outcome); whether the last one reached the customer is not known, "
              "so it is neither retried nor replaced by a fallback")
    fail_for_good(session, row=row, letter=letter, detail=detail)


def _commit_point(engine: Engine, dispatch_id: str) -> Callable[[str], bool]:
    """What a channel calls just before its point of no return: records the hand-over (committed) if the row
    is still this dispatcher's to send; False otherwise."""

    def commit(ref: str) -> bool:
        with transaction(engine) as session:
            row = _lock(session, dispatch_id)
            if row is None or row.state != SENDING or (row.provider_ref or "").startswith(HANDOVER):
                return False
            row.provider_ref = f"{HANDOVER}{ref}"[:500]
            return True

    return commit


def _outgoing(session: Session, settings: Settings, row: Dispatch) -> Outgoing:
    letter = session.get(Letter, row.letter_id)
    customer = session.get(Customer, letter.customer_id)
    pdf = None
    if row.channel in ("email", "print"):
        version = archived_version(session, document_id=letter.document_id)
        if version is None:
            raise LookupError(f"letter {letter.reference} has no archived version")
        pdf = b"".join(read_version(session, version=version))
    recipient = Recipient(name=customer.name, email=customer.email, mobile=customer.mobile, locale=customer.locale,
                          address={"lines": list(customer.address_lines or []), "city": customer.city,
                                   "postcode": customer.postcode, "country": customer.country})
    link = portal_url(settings, letter.id)
    sensitive = policy.sensitive(settings, letter.category)
    message = messages.message_for(session, letter=letter, customer=customer, channel=row.channel, link=link,
                                   sensitive=sensitive) if row.channel in messages.CHANNELS else None
    subject, text, html = (message.subject, message.text, message.html) if message else ("", "", "")
    if row.channel == "email" and settings.tracking_secret.get_secret_value():
        html = _tracked(html, link, click_url(settings, letter.id, row.channel, link))
        html += f'\n<img src="{escape(open_pixel_url(settings, letter.id, row.channel))}" width="1" height="1" alt="">'
    return Outgoing(letter_id=letter.id, channel=row.channel, idempotency_key=row.idempotency_key,
                    recipient=recipient, category=letter.category, subject=subject, pdf=pdf, portal_url=link,
                    sensitive=sensitive, text_body=text, html_body=html,
                    message_source=message.source if message else "")


def _tracked(html: str, link: str, click: str) -> str:
    """The HTML with its links to the portal going through the click-tracking redirect (hrefs only: the link's
    text, attributes and comments stay as they are)."""
    plain, tracked = escape(link), escape(click)
    return re.sub(rf"""(\bhref\s*=\s*)(["']){re.escape(plain)}\2""", lambda m: f"{m[1]}{m[2]}{tracked}{m[2]}", html,
                  flags=re.IGNORECASE)


def _call(settings: Settings, row_channel: str, action: str, payload: Outgoing | str) -> SendResult | None:
    try:
        channel = get_channel(row_channel, settings)
    except (ChannelError, ValueError) as exc:
        return failed(f"channel {row_channel} is not usable: {exc}", retryable=False)
    try:
        return channel.send(payload) if action == SEND else channel.check(payload)  # type: ignore[arg-type]
    except Exception as exc:  # a channel bug must not kill the loop; the row retries
        log.exception("channel %s raised on %s", row_channel, action)
        return failed(f"{type(exc).__name__}: {exc}", retryable=True)


def _backoff(settings: Settings, attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(settings.dispatch_backoff_seconds * 2 ** max(attempts - 1, 0), 6 * 3600))


def _queue(session: Session, *, letter: Letter, channel: str, reason: str, fallback_of: str | None) -> Dispatch:
    now = utcnow()
    new = Dispatch(id=new_id(), letter_id=letter.id, channel=channel, idempotency_key=f"{letter.id}:{channel}",
                   state=QUEUED, attempts=0, next_attempt_at=now, fallback_of=fallback_of, reason=reason[:500],
                   created_at=now, updated_at=now)
    session.add(new)
    session.flush()
    add_event(session, new, letter, QUEUED, new.reason or "")
    return new


def _link_portal(session: Session, *, letter: Letter, row: Dispatch, channel: str) -> None:
    """Make sure the portal row a `channel` message links to will publish the letter: queue it, or queue again
    the one that was suppressed with the letter."""
    portal = session.execute(select(Dispatch).where(Dispatch.letter_id == letter.id,
                                                    Dispatch.channel == policy.PORTAL)).scalar_one_or_none()
    if portal is None:
        _queue(session, letter=letter, channel=policy.PORTAL, fallback_of=row.id, reason=policy.portal_reason(channel))
    elif portal.state == SUPPRESSED:
        now = utcnow()
        portal.state, portal.next_attempt_at, portal.updated_at = QUEUED, now, now
        portal.reason = policy.portal_reason(channel)
        add_event(session, portal, letter, QUEUED, portal.reason)


def fall_back(session: Session, *, settings: Settings, row: Dispatch, letter: Letter, why: str) -> Dispatch | None:
    """Queue the next channel of the category's fallback chain after `row` gave up, if there is one (and the
    portal too when that channel's message links to it); none for a letter whose document was destroyed."""
    if destroyed(session, letter):
        return None  # every channel needs the archived PDF, or a link to it
    customer = session.get(Customer, letter.customer_id)
    have = set(session.execute(select(Dispatch.channel).where(Dispatch.letter_id == letter.id)).scalars())
    channel: str | None = row.channel
    while (channel := policy.next_in_chain(settings, letter.category, channel)) is not None:
        if channel in have:
            return None  # the letter already goes that way
        if policy.reachable(customer, channel) or (channel == "print" and customer.address_undeliverable):
            continue
        if policy.marketing_refused(session, settings, letter.category, customer, channel):
            continue  # no consent to market on that channel
        new = _queue(session, letter=letter, channel=channel, fallback_of=row.id,
                     reason=f"fallback after {row.channel} {row.state}: {why}")
        if policy.needs_portal(settings, letter.category, channel):
            _link_portal(session, letter=letter, row=row, channel=channel)
        events.emit(session, names.DISPATCH_FALLBACK, {"letter_id": letter.id, "from": row.channel, "to": channel})
        return new
    return None


def _give_up(session: Session, settings: Settings, row: Dispatch, letter: Letter, state: str, detail: str) -> None:
    row.state, row.lease_until, row.last_error = state, None, detail[:4000]
    add_event(session, row, letter, state, detail)
    fall_back(session, settings=settings, row=row, letter=letter, why=detail)


def _record(engine: Engine, settings: Settings, dispatch_id: str, action: str, result: SendResult | None,
            message: str = "") -> None:
    """Settle a send or poll in the ledger; `message` (what wrote the message sent) goes on the sent event."""
    if result is not None and result.status == TAKEN_OVER:
        return  # the other dispatcher handed the message over and records the outcome
    with transaction(engine) as session:
        row = _lock(session, dispatch_id)
        expected = SENDING if action == SEND else SENT
        if row is None or row.state != expected:
            return  # another dispatcher took the row over after its lease expired, and recorded it
        letter = session.get(Letter, row.letter_id)
        now = utcnow()
        row.updated_at = now
        if result is None:  # a poll without news
            give_up = row.sent_at and now - row.sent_at > dt.timedelta(hours=settings.dispatch_check_give_up_hours)
            if give_up:
                _give_up(session, settings, row, letter, FAILED, "no outcome from the printer in time")
            else:
                row.next_attempt_at = now + dt.timedelta(seconds=settings.dispatch_check_interval_seconds)
                return
        else:
            if result.provider_ref:
                row.provider_ref = result.provider_ref[:500]
            row.lease_until = None
            if result.status == DELIVERED:
                row.state, row.delivered_at, row.next_attempt_at = DELIVERED, now, None
                row.sent_at = row.sent_at or now
                add_event(session, row, letter, DELIVERED, result.detail)
            elif result.status == SENT:
                row.state, row.sent_at = SENT, now
                row.next_attempt_at = (now + dt.timedelta(seconds=settings.dispatch_check_interval_seconds)
                                       if row.channel in POLLED else None)
                add_event(session, row, letter, SENT, "; ".join(p for p in (result.detail, message) if p))
            elif result.retryable and row.attempts < settings.dispatch_max_attempts:
                row.state, row.last_error = QUEUED, result.detail[:4000]
                row.next_attempt_at = now + _backoff(settings, row.attempts)
                add_event(session, row, letter, QUEUED, f"attempt {row.attempts} failed ({result.detail}); "
                                                        f"retry at {row.next_attempt_at.isoformat()}")
                events.emit(session, names.DISPATCH_RETRY, {"letter_id": letter.id, "channel": row.channel,
                                                            "attempts": row.attempts})
            else:
                _give_up(session, settings, row, letter, FAILED,
                         f"{result.detail} (after {row.attempts} attempt{'s' if row.attempts != 1 else ''})")
        refresh_status(session, letter)
        audit.record(session, actor=ACTOR, action=f"letter.dispatch_{row.state}", object_type="dispatch",
                     object_id=row.id, details={"letter_id": letter.id, "channel": row.channel,
                                                "attempts": row.attempts, "provider_ref": row.provider_ref,
                                                "detail": (result.detail if result else "")[:500],
                                                **({"message": message} if message else {})})


def _settle_destroyed(engine: Engine, dispatch_id: str) -> None:
    with transaction(engine) as session:
        row = _lock(session, dispatch_id)
        if row is not None and row.state == SENDING:  # still ours: nobody took it over meanwhile
            fail_destroyed(session, row=row, letter=session.get(Letter, row.letter_id))


def _settle_suppressed(engine: Engine, dispatch_id: str, reason: str) -> None:
    """Suppress a row whose consent was withdrawn, with the portal row its message would have linked to (if that
    has not published the letter yet)."""
    with transaction(engine) as session:
        row = _lock(session, dispatch_id)
        if row is None or row.state != SENDING:  # no longer ours: somebody took it over meanwhile
            return
        letter = session.get(Letter, row.letter_id)
        # Both rows are locked before the audit head (which suppress() takes), as the consent subscriber locks its
        # rows first too: the two cannot deadlock.
        linked = session.execute(select(Dispatch).where(
            Dispatch.letter_id == letter.id, Dispatch.channel == policy.PORTAL, Dispatch.state == QUEUED,
            Dispatch.reason == policy.portal_reason(row.channel)).with_for_update()).scalar_one_or_none()
        suppress(session, row, letter, reason)
        if linked is not None:
            suppress(session, linked, letter, f"the {row.channel} message it was added for is suppressed")
        refresh_status(session, letter)


def _prepare(engine: Engine, settings: Settings, dispatch_id: str) -> Outgoing | None:
    """The message to send, or None when the row was settled instead: suppressed when the customer withdrew the
    marketing consent it needs, failed for good when its letter's document was destroyed, or retried (counted)
    when preparing failed, since nothing was sent."""
    withdrawn = None
    try:
        with transaction(engine, readonly=True) as session:
            row = session.get(Dispatch, dispatch_id)
            letter = session.get(Letter, row.letter_id)
            gone = destroyed(session, letter)
            withdrawn = None if gone else consent_withdrawn(session, settings, row, letter)
            outgoing = None if gone or withdrawn else _outgoing(session, settings, row)
    except Exception as exc:  # an unreadable PDF, a database hiccup: a failed attempt like any other
        log.exception("preparing dispatch %s failed", dispatch_id)
        detail = f"preparing the message failed: {type(exc).__name__}: {exc}"
        _record(engine, settings, dispatch_id, SEND, failed(detail, retryable=True))
        return None
    if withdrawn:
        _settle_suppressed(engine, dispatch_id, withdrawn)
    elif outgoing is None:
        _settle_destroyed(engine, dispatch_id)
    return outgoing


def _work(engine: Engine, settings: Settings, dispatch_id: str, action: str) -> None:
    payload: Outgoing | str | None
    if action == SEND:
        if (outgoing := _prepare(engine, settings, dispatch_id)) is None:
            return
        channel = outgoing.channel
        payload = dataclasses.replace(outgoing, commit_point=_commit_point(engine, dispatch_id))
    else:
        with transaction(engine, readonly=True) as session:
            row = session.get(Dispatch, dispatch_id)
            payload, channel = row.provider_ref, row.channel
    if payload is None:
        result: SendResult | None = failed("the row has no provider reference to poll", retryable=False)
    else:
        result = _call(settings, channel, action, payload)
    _record(engine, settings, dispatch_id, action, result,
            message=payload.message_source if isinstance(payload, Outgoing) else "")


def dispatch_due(engine: Engine | None = None, *, limit: int = 20, settings: Settings | None = None) -> int:
    """Claim up to `limit` due ledger rows and send (or poll) each; returns how many were claimed."""
    engine = engine or get_engine()
    settings = settings or get_settings()
    claims = _claim(engine, settings, limit)
    for dispatch_id, action in claims:
        try:
            _work(engine, settings, dispatch_id, action)
        except Exception:  # one bad row must not stop the others; its lease expires and it is retried
            log.exception("dispatch of %s failed", dispatch_id)
    return len(claims)


def record_bounce(session: Session, *, letter_id: str, channel: str = "email", detail: str,
                  permanent: bool = True) -> Dispatch | None:
    """Mark a sent row bounced (a DSN or a provider webhook) and queue the fallback; None if no such row."""
    stmt = select(Dispatch).where(Dispatch.letter_id == letter_id, Dispatch.channel == channel)
    if is_postgres(session):
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalar_one_or_none()
    if row is None or row.state not in (SENT, SENDING) or not permanent:
        return row
    letter = session.get(Letter, letter_id)
    row.updated_at = utcnow()
    _give_up(session, get_settings(), row, letter, BOUNCED, detail)
    refresh_status(session, letter)
    audit.record(session, actor=ACTOR, action="letter.dispatch_bounced", object_type="dispatch", object_id=row.id,
                 details={"letter_id": letter_id, "channel": channel, "detail": detail[:500]})
    return row


def record_dsn(session: Session, *, raw: bytes) -> Dispatch | None:
    """Apply a delivery status notification (RFC 3464) for one of our emails: a permanent failure marks the
    row bounced and queues the fallback; None when it is no DSN of ours."""
    bounce = parse_bounce(raw)
    if bounce is None or session.get(Letter, bounce.letter_id) is None:
        return None
    return record_bounce(session, letter_id=bounce.letter_id, channel="email", permanent=bounce.permanent,
                         detail=f"{bounce.status} {bounce.diagnostic}".strip())


def run_dispatcher(engine: Engine, stop: threading.Event, *, poll_seconds: float = 2.0, limit: int = 20) -> None:
    """Dispatch due rows until `stop` is set, sleeping `poll_seconds` when there is nothing to do."""
    from output.service.print_house import DailyRun  # imported here: print_house builds on this package

    daily = DailyRun(engine)  # the day's print run at POSTROOM_PRINT_RUN_AT, with POSTROOM_PRINT_ROUTE=house
    events.poll_until_stopped(lambda: dispatch_due(engine, limit=limit) + daily.poll(), stop,
                              poll_seconds=poll_seconds, what="dispatch")
