"""Rebuild the customer timeline from the events the outbox keeps, so an install that had documents and letters
before the timeline existed gets their history (`postroom search timeline-backfill`).

Every kept event that makes an entry is replayed through the subscribers' own row builder, in id order, a batch
per transaction. Idempotent: an event that already has its entry is skipped, so it can run again (or be
interrupted and rerun) at any time, beside the live subscribers. Changes need no replay: entries are built from
each document as it is now, and destroyed documents make none."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from repository.db import transaction
from repository.models import OutboxEvent
from search.timeline.feed import CREATING, add_entries, entries_for

BATCH = 500


def backfill(engine: Engine, *, batch: int = BATCH, progress: Callable[[int, int], None] | None = None) -> int:
    """Replay every kept event that makes a timeline entry; returns how many entries were added."""
    with transaction(engine, readonly=True) as session:
        total = session.execute(select(func.count()).select_from(OutboxEvent)
                                .where(OutboxEvent.name.in_(CREATING))).scalar_one()
    after, seen, added = 0, 0, 0
    while True:
        with transaction(engine) as session:
            found = list(session.execute(select(OutboxEvent).where(OutboxEvent.name.in_(CREATING),
                                                                   OutboxEvent.id > after)
                                         .order_by(OutboxEvent.id).limit(batch)).scalars())
            if not found:
                break
            added += add_entries(session, entries_for(session, found))
            after = found[-1].id
        seen += len(found)
        if progress is not None:
            progress(seen, max(total, seen))
    return added
