"""Reviewing a proposed disposition batch: list and read batches, exclude documents (with a reason), approve
or reject. Records managers only; nothing is destroyed until a batch is approved.

An excluded document (or every document of a rejected batch) goes to disposition "review": the sweep leaves it
alone until a records manager extends its retention or reclassifies it, which makes it "active" again.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from records import clock
from records import events as names
from records.errors import DispositionStateError, RecordsNotFoundError
from records.models import DispositionBatch, DispositionItem, RecordInfo, RetentionClass
from records.service.common import note, require_records_manager
from records.service.disposition.states import APPROVED, BATCH_STATES, PENDING, PROPOSED, REJECTED, REVIEW
from repository import audit, events
from repository.access import deny_read
from repository.errors import InvalidInputError, PermissionDeniedError
from repository.models import Document, DocumentType, User
from repository.service.documents import Page, decode_cursor

MAX_REASON = 2000
MAX_EXCLUDE = 10_000
_IN_CHUNK = 1000  # ids per IN (...) list


@dataclass(frozen=True)
class ItemRow:
    """A batch item with what a reviewer needs to decide: the document's title, type and class code."""

    item: DispositionItem
    title: str
    document_type: str
    class_code: str | None


def _load(session: Session, batch_id: str, *, lock: bool = False) -> DispositionBatch:
    query = select(DispositionBatch).where(DispositionBatch.id == batch_id)
    batch = session.execute(query.with_for_update() if lock else query).scalar_one_or_none()
    if batch is None:
        raise RecordsNotFoundError(f"disposition batch {batch_id} not found")
    return batch


def get_batch(session: Session, *, actor: User, batch_id: str) -> DispositionBatch:
    """A batch; not found for anyone but a records manager (or admin)."""
    try:
        require_records_manager(actor)
    except PermissionDeniedError:
        raise deny_read(actor, "disposition_batch", batch_id) from None
    return _load(session, batch_id)


def _cursor(batch: DispositionBatch) -> str:
    raw = json.dumps([batch.proposed_at.isoformat(), batch.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def list_batches(session: Session, *, actor: User, state: str | None = None, cursor: str | None = None,
                 limit: int = 50) -> Page:
    """Batches, newest first, optionally in one state, a page at a time (records managers only)."""
    require_records_manager(actor)
    if state is not None and state not in BATCH_STATES:
        raise InvalidInputError(f"state must be one of {', '.join(BATCH_STATES)}", field="state")
    limit = min(max(limit, 1), 200)
    query = select(DispositionBatch)
    if state is not None:
        query = query.where(DispositionBatch.state == state)
    if cursor:
        at, last_id = decode_cursor(cursor)
        query = query.where(or_(DispositionBatch.proposed_at < at,
                                and_(DispositionBatch.proposed_at == at, DispositionBatch.id < last_id)))
    rows = list(session.execute(query.order_by(DispositionBatch.proposed_at.desc(), DispositionBatch.id.desc())
                                .limit(limit + 1)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, _cursor(rows[-1]) if more else None)


@dataclass(frozen=True)
class ItemsPage:
    """A page of a batch's items and the document id to continue after (None on the last page)."""

    items: list[ItemRow]
    next_after: str | None


def list_items(session: Session, *, actor: User, batch_id: str, after: str | None = None,
               limit: int = 100) -> ItemsPage:
    """A batch's items in document-id order, `limit` at a time after document id `after`."""
    get_batch(session, actor=actor, batch_id=batch_id)
    limit = min(max(limit, 1), 1000)
    query = (select(DispositionItem, Document.title, DocumentType.name, RetentionClass.code)
             .join(Document, Document.id == DispositionItem.document_id)
             .join(DocumentType, DocumentType.id == Document.document_type_id)
             .outerjoin(RetentionClass, RetentionClass.id == DispositionItem.class_id)
             .where(DispositionItem.batch_id == batch_id))
    if after:
        query = query.where(DispositionItem.document_id > after)
    rows = session.execute(query.order_by(DispositionItem.document_id).limit(limit + 1)).all()
    page = [ItemRow(item, title, type_name, code) for item, title, type_name, code in rows[:limit]]
    return ItemsPage(page, page[-1].item.document_id if len(rows) > limit else None)


def _reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInputError("a reason is required", field="reason")
    if len(reason) > MAX_REASON:
        raise InvalidInputError(f"the reason must be at most {MAX_REASON} characters", field="reason")
    return reason


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), _IN_CHUNK):
        yield ids[start:start + _IN_CHUNK]


def _check_items(session: Session, batch_id: str, document_ids: Iterable[str]) -> list[str]:
    """The ids deduplicated, in order; InvalidInputError naming ids that are not items of the batch."""
    ids = list(dict.fromkeys(str(d) for d in document_ids))
    if not ids:
        raise InvalidInputError("name at least one document to exclude", field="document_ids")
    if len(ids) > MAX_EXCLUDE:
        raise InvalidInputError(f"exclude at most {MAX_EXCLUDE} documents at a time", field="document_ids")
    known: set[str] = set()
    for part in _chunks(ids):
        known.update(session.execute(select(DispositionItem.document_id).where(
            DispositionItem.batch_id == batch_id, DispositionItem.document_id.in_(part))).scalars())
    unknown = [d for d in ids if d not in known]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise InvalidInputError(f"not in disposition batch {batch_id}: {shown}", field="document_ids",
                                unknown=unknown[:100])
    return ids


def _require_proposed(batch: DispositionBatch, what: str) -> None:
    if batch.state != PROPOSED:
        raise DispositionStateError(f"disposition batch {batch.id} is {batch.state}; only a proposed batch can be "
                                    f"{what}", state=batch.state)


def _to_review(session: Session, batch_id: str, document_ids: list[str] | None = None) -> None:
    """The batch's pending documents (or the named ones) go to "review"."""
    items = select(DispositionItem.document_id).where(DispositionItem.batch_id == batch_id)
    parts = [None] if document_ids is None else list(_chunks(document_ids))
    for part in parts:
        chosen = items if part is None else items.where(DispositionItem.document_id.in_(part))
        session.execute(update(RecordInfo).where(RecordInfo.document_id.in_(chosen), RecordInfo.disposition == PENDING)
                        .values(disposition=REVIEW, updated_at=clock.now())
                        .execution_options(synchronize_session=False))


def _exclude(session: Session, actor: User, batch: DispositionBatch, ids: list[str], reason: str) -> None:
    for part in _chunks(ids):
        session.execute(update(DispositionItem).where(DispositionItem.batch_id == batch.id,
                                                      DispositionItem.document_id.in_(part))
                        .values(excluded=True, exclude_reason=reason, excluded_by=actor.username)
                        .execution_options(synchronize_session=False))
    _to_review(session, batch.id, ids)
    audit.record_many(session, [{"actor": actor.username, "action": names.DISPOSITION_ITEM_EXCLUDED,
                                 "object_type": "document", "object_id": d,
                                 "details": {"batch_id": batch.id, "reason": reason}} for d in ids])
    events.emit_many(session, [(names.DISPOSITION_ITEM_EXCLUDED, {"batch_id": batch.id, "document_id": d})
                               for d in ids])


def exclude_items(session: Session, *, actor: User, batch_id: str, document_ids: Iterable[str],
                  reason: str) -> DispositionBatch:
    """Take documents out of a proposed batch, with a reason; they go to "review" (extend or reclassify them)."""
    require_records_manager(actor)
    reason = _reason(reason)
    batch = _load(session, batch_id, lock=True)
    _require_proposed(batch, "changed")
    _exclude(session, actor, batch, _check_items(session, batch_id, document_ids), reason)
    return batch


def approve(session: Session, *, actor: User, batch_id: str,
            exclude: Iterable[Mapping[str, str]] | None = None) -> DispositionBatch:
    """Approve a proposed batch, first excluding the given documents (each {document_id, reason}); the
    background scheduler (or `postroom records execute`) then carries it out."""
    require_records_manager(actor)
    batch = _load(session, batch_id, lock=True)
    _require_proposed(batch, "approved")
    by_reason: dict[str, list[str]] = {}
    for entry in exclude or ():
        by_reason.setdefault(_reason(entry.get("reason")), []).append(str(entry.get("document_id") or ""))
    checked = {reason: _check_items(session, batch_id, ids) for reason, ids in by_reason.items()}
    for reason, ids in checked.items():
        _exclude(session, actor, batch, ids, reason)
    now = clock.now()
    batch.state, batch.approved_by, batch.approved_at = APPROVED, actor.username, now
    excluded = sum(len(ids) for ids in checked.values())
    note(session, actor=actor.username, action=names.DISPOSITION_APPROVED, object_type="disposition_batch",
         object_id=batch.id, details={"items": batch.item_count, "excluded_now": excluded},
         event=names.DISPOSITION_APPROVED, payload={"batch_id": batch.id})
    session.flush()
    return batch


def reject(session: Session, *, actor: User, batch_id: str, reason: str) -> DispositionBatch:
    """Reject a proposed batch with a reason: nothing is destroyed and its documents go to "review"."""
    require_records_manager(actor)
    reason = _reason(reason)
    batch = _load(session, batch_id, lock=True)
    _require_proposed(batch, "rejected")
    _to_review(session, batch.id)
    batch.state, batch.note, batch.completed_at = REJECTED, reason, clock.now()
    note(session, actor=actor.username, action=names.DISPOSITION_REJECTED, object_type="disposition_batch",
         object_id=batch.id, details={"reason": reason, "items": batch.item_count},
         event=names.DISPOSITION_REJECTED, payload={"batch_id": batch.id})
    session.flush()
    return batch

