"""Carrying out approved disposition batches (a job wrapper: it owns its transactions, like api/jobs.py).

A process takes a batch under a lease (approved → executing; or executing whose runner stopped renewing), writes
the transfer package of its `transfer` items first (a read-only pass), then works through the items in chunks,
one transaction each, checking every document again (not held, still due, still pending); a blob is deleted only
after its destruction committed. A crash loses at most the chunk in flight: the next run resumes the batch and
skips items that already have an outcome. At the end the certificate is filed and the batch is completed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from records import clock
from records import events as names
from records.models import TRANSFER, DispositionBatch, DispositionItem, RecordInfo
from records.service.common import SYSTEM, active_holds, note
from records.service.destroy import destroy_with_tombstone
from records.service.disposition.certificate import issue_certificate
from records.service.disposition.states import (
    ACTIVE,
    APPROVED,
    COMPLETED,
    DESTROYED,
    EXECUTING,
    PENDING,
    REVIEW,
    REVIEWED,
    SKIPPED,
    TRANSFERRED,
)
from records.service.disposition.transfer import build_package
from repository import audit
from repository.db import transaction
from repository.errors import RepositoryError
from repository.models import Document
from repository.service.destruction import delete_blobs
from repository.service.documents import DESTROYED as DOCUMENT_DESTROYED
from repository.types import utcnow

log = logging.getLogger(__name__)
ACTOR = SYSTEM
LEASE = dt.timedelta(minutes=5)  # a runner that stops renewing (crashed) loses its batch after this
ITEM_SKIPPED = "disposition.item_skipped"


class LeaseLostError(Exception):
    """Another runner took the batch (this one stopped renewing for longer than the lease)."""


def new_owner() -> str:
    """A runner's name for leases: host, process and a random part."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


def _lease(batch: DispositionBatch) -> dict[str, Any]:
    return (batch.summary or {}).get("lease") or {}


def _set_lease(batch: DispositionBatch, owner: str | None) -> None:
    summary = {k: v for k, v in (batch.summary or {}).items() if k != "lease"}
    if owner is not None:
        summary["lease"] = {"owner": owner, "until": (utcnow() + LEASE).isoformat()}
    batch.summary = summary  # a new dict, so the JSON column is written


def _free(batch: DispositionBatch, owner: str, now: dt.datetime) -> bool:
    if batch.state == APPROVED:
        return True
    lease = _lease(batch)
    return batch.state == EXECUTING and (
        not lease or lease.get("owner") == owner or dt.datetime.fromisoformat(lease["until"]) < now)


def claim(engine: Engine | None, *, owner: str, batch_id: str | None = None) -> str | None:
    """Take the lease of the oldest approved batch (or one whose runner stopped), or of the given one; None when
    there is none to take. The batch row is locked while deciding, so two runners never both take it."""
    with transaction(engine) as session:
        query = (select(DispositionBatch).where(DispositionBatch.state.in_((APPROVED, EXECUTING)))
                 .order_by(DispositionBatch.approved_at, DispositionBatch.id).limit(20))
        if batch_id is not None:
            query = query.where(DispositionBatch.id == batch_id)
        now = utcnow()
        for batch in session.execute(query.with_for_update(skip_locked=True)).scalars().all():
            if _free(batch, owner, now):
                batch.state = EXECUTING
                _set_lease(batch, owner)
                return batch.id
    return None


def _renew(session: Session, batch_id: str, owner: str) -> DispositionBatch:
    batch = session.execute(select(DispositionBatch).where(DispositionBatch.id == batch_id)
                            .with_for_update()).scalar_one()
    if batch.state != EXECUTING or _lease(batch).get("owner") != owner:
        raise LeaseLostError(f"disposition batch {batch_id} is no longer held by {owner}")
    _set_lease(batch, owner)
    return batch


def _why_not(session: Session, item: DispositionItem, info: RecordInfo | None, package: set[str]) -> str | None:
    """Why an item may not be carried out now, or None when it may."""
    if info is None:
        return "the document has no records row"
    if info.disposition != PENDING:
        return f"its disposition is now {info.disposition}, not pending"
    holds = active_holds(session, item.document_id)
    if holds:
        return f"under legal hold ({', '.join(holds)})"
    if info.due_at is None or info.due_at > clock.now():
        return f"no longer due (due {info.due_at.isoformat() if info.due_at else 'never: its clock was reset'})"
    if session.get(Document, item.document_id).state == DOCUMENT_DESTROYED:
        return "the document was destroyed meanwhile"
    if item.action == TRANSFER and item.document_id not in package:
        return "it is not in the batch's transfer package"
    return None


def _carry_out(session: Session, batch: DispositionBatch, item: DispositionItem, info: RecordInfo) -> list[str]:
    """Destroy, transfer or send to review one document; returns blob keys to delete after the commit."""
    if item.action == REVIEW:
        info.disposition, info.updated_at = REVIEW, clock.now()
        item.outcome = REVIEWED
        note(session, actor=ACTOR, action=names.RECORD_REVIEW_DUE, object_type="document",
             object_id=item.document_id, details={"batch_id": batch.id}, event=names.RECORD_REVIEW_DUE,
             payload={"document_id": item.document_id, "batch_id": batch.id})
        return []
    transfer = (batch.summary or {}).get("transfer") or {}
    gone = destroy_with_tombstone(session, document_id=item.document_id, actor=ACTOR, approved_by=batch.approved_by,
                                  action=item.action, batch_id=batch.id, erasure_id=info.erasure_id,
                                  transfer_package=transfer.get("package") if item.action == TRANSFER else None)
    item.outcome = TRANSFERRED if item.action == TRANSFER else DESTROYED
    return gone.blob_keys


def _skip(session: Session, item: DispositionItem, info: RecordInfo | None, reason: str) -> None:
    if info is not None and info.disposition == PENDING:
        info.disposition, info.updated_at = ACTIVE, clock.now()  # the next sweep decides again
    item.outcome, item.outcome_note = SKIPPED, reason
    note(session, actor=ACTOR, action=ITEM_SKIPPED, object_type="document", object_id=item.document_id,
         details={"batch_id": item.batch_id, "reason": reason})


def _item(session: Session, batch: DispositionBatch, item: DispositionItem, package: set[str]) -> list[str]:
    audit.lock_head(session)  # a hold being placed on this document meanwhile commits first, and is seen below
    info = session.execute(select(RecordInfo).where(RecordInfo.document_id == item.document_id)
                           .with_for_update()).scalar_one_or_none()
    reason = _why_not(session, item, info, package)
    keys: list[str] = []
    if reason is None:
        try:
            with session.begin_nested():
                keys = _carry_out(session, batch, item, info)
        except RepositoryError as exc:  # refused at the last moment (a hold, a state change): skip, go on
            reason = exc.detail
    if reason is not None:
        _skip(session, item, info, reason)
    item.outcome_at = clock.now()
    return keys


def _open_items(session: Session, batch_id: str, *, action: str | None = None, limit: int | None = None):  # noqa: ANN202
    query = select(DispositionItem).where(DispositionItem.batch_id == batch_id,
                                          DispositionItem.excluded.is_(False), DispositionItem.outcome.is_(None))
    if action is not None:
        query = query.where(DispositionItem.action == action)
    return session.execute(query.order_by(DispositionItem.document_id).limit(limit)).scalars().all()


def _transfer_package(engine: Engine | None, batch_id: str, owner: str) -> set[str]:
    """The documents in the batch's transfer package, writing it first if it is not there yet: every transfer
    item that may be carried out now (one held meanwhile is left out, and skipped later)."""
    with transaction(engine, readonly=True) as session:
        recorded = (session.get(DispositionBatch, batch_id).summary or {}).get("transfer")
        items = _open_items(session, batch_id, action=TRANSFER)
        everything = {i.document_id for i in items}
        todo = [i.document_id for i in items
                if _why_not(session, i, session.get(RecordInfo, i.document_id), everything) is None]
    if recorded and Path(recorded["package"]).is_file():
        return set(recorded["documents"])
    if not todo:
        return set()
    if recorded:
        log.warning("the transfer package %s of disposition batch %s is missing; writing the %d documents not yet "
                    "transferred again", recorded["package"], batch_id, len(todo))
    renewed = [utcnow()]

    def keep_lease() -> None:  # a large package may take longer than the lease
        if utcnow() - renewed[0] > LEASE / 5:
            with transaction(engine) as s:
                _renew(s, batch_id, owner)
            renewed[0] = utcnow()

    package = build_package(engine, batch_id=batch_id, document_ids=todo, on_document=keep_lease,
                            stale_after=LEASE * 2)
    with transaction(engine) as session:
        batch = _renew(session, batch_id, owner)
        batch.summary = {**batch.summary, "transfer": {"package": str(package.path), "sha256": package.sha256,
                                                        "documents": todo}}
    return set(todo)


def _finish(engine: Engine | None, batch_id: str, owner: str) -> None:
    with transaction(engine) as session:
        batch = _renew(session, batch_id, owner)
        now = clock.now()
        certificate = issue_certificate(session, batch=batch, executed_at=now)
        counts: dict[str, int] = {}
        for outcome in session.execute(select(DispositionItem.outcome).where(
                DispositionItem.batch_id == batch_id, DispositionItem.excluded.is_(False))).scalars():
            counts[outcome] = counts.get(outcome, 0) + 1
        _set_lease(batch, None)
        batch.summary = {**batch.summary, "outcomes": counts}
        batch.state, batch.completed_at, batch.certificate_id = COMPLETED, now, certificate.id
        note(session, actor=ACTOR, action=names.DISPOSITION_COMPLETED, object_type="disposition_batch",
             object_id=batch_id, details={"outcomes": counts, "certificate_id": certificate.id},
             event=names.DISPOSITION_COMPLETED, payload={"batch_id": batch_id, "certificate_id": certificate.id})


def run_batch(engine: Engine | None, *, batch_id: str, owner: str, chunk: int = 200,
              stop: threading.Event | None = None) -> bool:
    """Carry out a batch this runner holds; True when it completed (False: stopped, or the lease was lost)."""
    try:
        package = _transfer_package(engine, batch_id, owner)
        while True:
            if stop is not None and stop.is_set():
                return False
            with transaction(engine) as session:
                batch = _renew(session, batch_id, owner)
                items = _open_items(session, batch_id, limit=chunk)
                keys = [key for item in items for key in _item(session, batch, item, package)]
            delete_blobs(keys)
            if not items:
                break
        _finish(engine, batch_id, owner)
        return True
    except LeaseLostError as exc:
        log.warning("%s", exc)
        return False


def execute_approved(engine: Engine | None = None, *, batch_id: str | None = None, chunk: int = 200,
                     owner: str | None = None, stop: threading.Event | None = None) -> int:
    """Carry out approved batches (or the given one) one after another, resuming any whose runner stopped;
    returns how many batches this call completed."""
    owner = owner or new_owner()
    completed = 0
    while stop is None or not stop.is_set():
        taken = claim(engine, owner=owner, batch_id=batch_id)
        if taken is None:
            break
        if run_batch(engine, batch_id=taken, owner=owner, chunk=chunk, stop=stop):
            completed += 1
        if batch_id is not None:
            break
    return completed
