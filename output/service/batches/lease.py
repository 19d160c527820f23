"""A batch's lease and life cycle: which runner holds it (claim), its counts, cancelling it.

A runner takes a batch with a conditional UPDATE (queued, or running with an expired lease), so two runners never
hold one batch; the runner renews the lease with every chunk it commits (runner.py).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from output import events as names
from output.models import BATCH_CANCELLED, BATCH_QUEUED, BATCH_RUNNING, LetterBatch
from output.service._errors import BatchStateError
from repository import audit, events
from repository.config import get_settings
from repository.db import transaction
from repository.models import User
from repository.types import utcnow


def new_owner() -> str:
    """A runner's name for leases: host, process and a random part."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class Progress:
    """Counts of a batch as its runner last committed them."""

    batch_id: str
    status: str
    rows_total: int
    rows_done: int
    rows_failed: int
    pages: int


def claim_next(engine: Engine | None, *, owner: str, batch_id: str | None = None) -> str | None:
    """Take the lease of the oldest runnable batch (queued, or running with an expired lease), or of the given
    one; None when there is none to take."""
    settings = get_settings()
    now = utcnow()
    runnable = (LetterBatch.status.in_((BATCH_QUEUED, BATCH_RUNNING)),
                or_(LetterBatch.lease_until.is_(None), LetterBatch.lease_until < now))
    with transaction(engine) as session:
        query = select(LetterBatch.id).where(*runnable).order_by(LetterBatch.created_at).limit(5)
        if batch_id is not None:
            query = query.where(LetterBatch.id == batch_id)
        for candidate in session.execute(query).scalars().all():
            taken = session.execute(update(LetterBatch).where(LetterBatch.id == candidate, *runnable).values(
                status=BATCH_RUNNING, lease_owner=owner, runs=LetterBatch.runs + 1, updated_at=now,
                lease_until=now + dt.timedelta(seconds=settings.batch_lease_seconds)))
            if taken.rowcount == 1:
                batch = session.get(LetterBatch, candidate)
                if batch.started_at is None:
                    batch.started_at = now
                return candidate
    return None


def progress_of(batch_id: str, *, engine: Engine | None = None) -> Progress:
    """A batch's counts as committed."""
    with transaction(engine, readonly=True) as session:
        return progress_from(session.get(LetterBatch, batch_id))


def progress_from(batch: LetterBatch) -> Progress:
    """A batch's counts."""
    return Progress(batch_id=batch.id, status=batch.status, rows_total=batch.rows_total, rows_done=batch.rows_done,
                    rows_failed=batch.rows_failed, pages=batch.pages)


def cancel_batch(session: Session, *, actor: User, batch: LetterBatch) -> LetterBatch:
    """Stop a queued or running batch: no further letters are made (letters already made stay and are sent)."""
    if batch.status not in (BATCH_QUEUED, BATCH_RUNNING):
        raise BatchStateError(f"batch {batch.id} is {batch.status}; only a queued or running batch can be cancelled")
    batch.status, batch.finished_at, batch.updated_at = BATCH_CANCELLED, utcnow(), utcnow()
    batch.lease_owner, batch.lease_until = None, None
    audit.record(session, actor=actor.username, action=names.BATCH_CANCELLED, object_type="letter_batch",
                 object_id=batch.id, details={"letters": batch.rows_done, "pending": batch.rows_total
                                              - batch.rows_done - batch.rows_failed})
    events.emit(session, names.BATCH_CANCELLED, {"batch_id": batch.id})
    return batch
