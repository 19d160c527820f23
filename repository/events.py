"""The outbox: events written in the business transaction and delivered to subscribers by a worker.

Delivery is at-least-once; each subscriber's effects commit together with a delivery mark, so a retried event
is not handled twice by the same subscriber.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from repository.db import is_postgres, transaction
from repository.models import OutboxDelivery, OutboxEvent
from repository.types import utcnow

log = logging.getLogger(__name__)

DOCUMENT_CREATED = "document.created"
DOCUMENT_CHECKED_OUT = "document.checked_out"
DOCUMENT_CHECKED_IN = "document.checked_in"
DOCUMENT_CHECKOUT_CANCELLED = "document.checkout_cancelled"
DOCUMENT_UPDATED = "document.updated"
DOCUMENT_TRASHED = "document.trashed"
DOCUMENT_RESTORED = "document.restored"
DOCUMENT_DESTROYED = "document.destroyed"
CUSTOMER_CREATED = "customer.created"
CUSTOMER_UPDATED = "customer.updated"
CUSTOMER_CONSENT_RECORDED = "customer.consent_recorded"
CUSTOMER_UNDELIVERABLE = "customer.undeliverable"
CUSTOMER_UNDELIVERABLE_CLEARED = "customer.undeliverable_cleared"
CUSTOMERS_IMPORTED = "customers.imported"
DOCUMENT_TYPE_CREATED = "document_type.created"
USER_CREATED = "user.created"
KEYS_ROTATED = "keys.rotated"

LEASE = dt.timedelta(minutes=5)
MAX_BACKOFF = dt.timedelta(hours=1)

Handler = Callable[[Session, OutboxEvent], None]


@dataclass(frozen=True)
class Subscriber:
    """A named handler for one event name."""

    name: str
    event: str
    handler: Handler


_subscribers: dict[str, list[Subscriber]] = {}
_APPEND = insert(OutboxEvent.__table__)  # built once, Core; values come as parameters (see audit.py)


def emit(session: Session, name: str, payload: dict[str, Any]) -> None:
    """Write an event in the caller's transaction (a plain insert: the outbox is append-only)."""
    now = utcnow()
    session.execute(_APPEND, {"name": name, "payload": payload, "created_at": now, "available_at": now,
                              "attempts": 0})


def emit_many(session: Session, items: list[tuple[str, dict[str, Any]]]) -> None:
    """Write many (name, payload) events in the caller's transaction with one insert."""
    if items:
        now = utcnow()
        session.execute(_APPEND, [{"name": name, "payload": payload, "created_at": now, "available_at": now,
                                   "attempts": 0} for name, payload in items])


def subscribe(event: str, name: str, handler: Handler) -> None:
    """Register a handler for an event under a stable subscriber name (used to mark deliveries)."""
    subs = _subscribers.setdefault(event, [])
    if not any(s.name == name for s in subs):
        subs.append(Subscriber(name, event, handler))


def clear_subscribers() -> None:
    """Forget every registration (tests)."""
    _subscribers.clear()


def _claim(engine: Engine, limit: int) -> list[int]:
    now = utcnow()
    with transaction(engine) as session:
        stmt = (
            select(OutboxEvent)
            .where(OutboxEvent.delivered_at.is_(None), OutboxEvent.failed_at.is_(None))
            .where(OutboxEvent.available_at <= now)
            .order_by(OutboxEvent.id)
            .limit(limit)
        )
        if is_postgres(session):
            stmt = stmt.with_for_update(skip_locked=True)
        events = session.execute(stmt).scalars().all()
        claimed = []
        for event in events:
            if _subscribers.get(event.name):
                event.available_at = now + LEASE
                claimed.append(event.id)
            else:
                event.delivered_at = now  # nobody in this process listens: done, without a round per event
        return claimed


def _backoff(attempts: int) -> dt.timedelta:
    return min(dt.timedelta(seconds=2**attempts), MAX_BACKOFF)


def _deliver_one(engine: Engine, event_id: int, max_attempts: int) -> None:
    with transaction(engine) as session:
        event = session.get(OutboxEvent, event_id)
        done = set(
            session.execute(select(OutboxDelivery.subscriber).where(OutboxDelivery.event_id == event_id)).scalars()
        )
        name = event.name
    pending = [s for s in _subscribers.get(name, []) if s.name not in done]
    error: str | None = None
    for sub in pending:
        try:
            with transaction(engine) as session:
                event = session.get(OutboxEvent, event_id)
                sub.handler(session, event)
                session.add(OutboxDelivery(event_id=event_id, subscriber=sub.name))
        except Exception as exc:  # a failing subscriber must not stop the others
            log.warning("subscriber %s failed on event %s (%s): %s", sub.name, event_id, name, exc)
            error = f"{sub.name}: {type(exc).__name__}: {exc}"
    with transaction(engine) as session:
        event = session.get(OutboxEvent, event_id)
        if error is None:
            event.delivered_at = utcnow()
            return
        event.attempts += 1
        event.last_error = error[:2000]
        if event.attempts >= max_attempts:
            event.failed_at = utcnow()
        else:
            event.available_at = utcnow() + _backoff(event.attempts)


def deliver_pending(engine: Engine, *, limit: int = 100, max_attempts: int = 10) -> int:
    """Claim and deliver up to `limit` due events; returns how many had subscribers to deliver to.

    Every process registers the same subscribers at start-up (DESIGN.md), so an event no subscriber here
    listens for is simply marked delivered."""
    ids = _claim(engine, limit)
    for event_id in ids:
        _deliver_one(engine, event_id, max_attempts)
    return len(ids)


def pending_count(session: Session) -> int:
    """Events not yet delivered nor given up on."""
    stmt = select(func.count()).select_from(OutboxEvent).where(
        OutboxEvent.delivered_at.is_(None), OutboxEvent.failed_at.is_(None)
    )
    return session.execute(stmt).scalar_one()


def poll_until_stopped(step: Callable[[], int], stop: threading.Event, *, poll_seconds: float, what: str) -> None:
    """Run `step` (which returns how much it did) until `stop` is set, sleeping `poll_seconds` when it did
    nothing; an exception is logged and the loop goes on (a database hiccup must not end a worker)."""
    while not stop.is_set():
        try:
            done = step()
        except Exception:
            log.exception("%s failed; retrying", what)
            done = 0
        if not done:
            stop.wait(poll_seconds)


def run_worker(engine: Engine, stop: threading.Event, *, poll_seconds: float = 1.0, max_attempts: int = 10) -> None:
    """Deliver events until `stop` is set, sleeping `poll_seconds` when there is nothing to do."""
    poll_until_stopped(lambda: deliver_pending(engine, max_attempts=max_attempts), stop,
                       poll_seconds=poll_seconds, what="outbox delivery")
