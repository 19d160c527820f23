"""Erasure requests (GDPR Art. 17): erase what a customer's retention allows now, keep and restrict the rest
(legal hold, legal obligation, a record's retention), schedule its erasure for when it falls due, and report."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from records import clock
from records import events as names
from records.errors import RecordsNotFoundError
from records.models import ErasureRequest, HoldItem, RecordInfo, RetentionClass
from records.service.classification import ensure_info
from records.service.common import note, require_records_manager
from records.service.destroy import destroy_with_tombstone
from repository import audit
from repository.access import ADMIN, RECORDS_MANAGER, deny_read
from repository.errors import InvalidInputError
from repository.models import Customer, Document, DocumentType, User
from repository.service.documents import DESTROYED

ERASURE = "erasure"
LEGAL_HOLD, LEGAL_OBLIGATION, RETENTION = "legal_hold", "legal_obligation", "retention"
CHUNK = 500  # documents decided per round trip; a customer with 100k documents is never loaded whole


@dataclass
class ErasureResult:
    """The stored request and the blobs of the erased documents, to delete once the caller has committed."""

    request: ErasureRequest
    blob_keys: list[str] = field(default_factory=list)


def _chunks(session: Session, customer_id: str) -> Iterator[list[Document]]:
    """The customer's documents that are not destroyed, in id order, CHUNK at a time (keyset pagination)."""
    after = ""
    while True:
        rows = list(session.execute(
            select(Document).where(Document.customer_id == customer_id, Document.state != DESTROYED,
                                   Document.id > after).order_by(Document.id).limit(CHUNK)).scalars())
        if not rows:
            return
        yield rows
        after = rows[-1].id


def _reference(reference: str | None) -> str | None:
    """The caller's reference (a ticket or letter number), trimmed; None when blank."""
    if reference is None or not reference.strip():
        return None
    reference = reference.strip()
    if len(reference) > 200 or any(ord(c) < 32 for c in reference):
        raise InvalidInputError("reference must be one line of at most 200 characters", field="reference")
    return reference


def _holds(session: Session, document_ids: list[str]) -> dict[str, list[str]]:
    """The active holds of each of these documents."""
    found: dict[str, list[str]] = {}
    for document_id, hold_id in session.execute(
            select(HoldItem.document_id, HoldItem.hold_id).where(
                HoldItem.document_id.in_(document_ids), HoldItem.released_at.is_(None))
            .order_by(HoldItem.hold_id)):
        found.setdefault(document_id, []).append(hold_id)
    return found


def _retention_running(info: RecordInfo, now: dt.datetime) -> bool:
    """True while retention has not ended: due later, or no due date because the clock has not started."""
    if info.due_at is not None:
        return info.due_at > now
    return info.trigger_at is None


def _keep_reason(info: RecordInfo, cls: RetentionClass | None, now: dt.datetime) -> str | None:
    """Why a document that is not held must be kept (its retention runs and the law or its declaration demands
    it), or None when it can be erased now."""
    if not _retention_running(info, now):
        return None
    if cls is not None and cls.legal_basis:
        return LEGAL_OBLIGATION
    if info.declared_at is not None:
        return RETENTION
    return None


class _Report:
    """The decisions of one request as they are made."""

    def __init__(self) -> None:
        self.erased: list[dict[str, Any]] = []
        self.kept: list[dict[str, Any]] = []
        self.blob_keys: list[str] = []

    def as_dict(self) -> dict[str, Any]:
        return {"erased": self.erased, "kept": self.kept}


def _decide_chunk(session: Session, *, documents: list[Document], request: ErasureRequest, actor: User,
                  now: dt.datetime, classes: dict[str, RetentionClass | None], type_names: dict[str, str],
                  report: _Report) -> None:
    ids = [d.id for d in documents]
    holds = _holds(session, ids)
    infos = {i.document_id: i for i in session.execute(
        select(RecordInfo).where(RecordInfo.document_id.in_(ids))).scalars()}
    for document in documents:
        info = infos.get(document.id) or ensure_info(session, document)
        if info.class_id is not None and info.class_id not in classes:
            classes[info.class_id] = session.get(RetentionClass, info.class_id)
        cls = classes.get(info.class_id) if info.class_id else None
        doc_type = type_names.setdefault(document.document_type_id,
                                         session.get(DocumentType, document.document_type_id).name)
        held = holds.get(document.id, [])
        reason = _keep_reason(info, cls, now)
        if held:
            if reason is None:  # only the hold keeps it: due now, the sweep proposes it once the hold is released
                info.due_at = now
            reason = LEGAL_HOLD
        if reason is None:
            gone = destroy_with_tombstone(session, document_id=document.id, actor=actor.username,
                                          approved_by=actor.username, action=ERASURE, erasure_id=request.id)
            report.erased.append({"document_id": document.id, "type": doc_type})
            report.blob_keys.extend(gone.blob_keys)
            continue
        document.restricted = True
        info.erasure_id = request.id
        info.updated_at = clock.now()
        entry = {"document_id": document.id, "type": doc_type, "reason": reason,
                 "until": None if reason == LEGAL_HOLD or info.due_at is None else info.due_at.isoformat(),
                 "holds": held, "legal_basis": cls.legal_basis if cls is not None else None}
        report.kept.append(entry)
        note(session, actor=actor.username, action="document.restricted", object_type="document",
             object_id=document.id, details={"erasure_id": request.id, "reason": reason, "until": entry["until"],
                                             "holds": held})


def request_erasure(session: Session, *, actor: User, customer_id: str,
                    reference: str | None = None) -> ErasureResult:
    """Erase every document of the customer that may go now; keep the rest (legal hold, legal obligation, a
    record's retention) restricted to records managers and scheduled for erasure when due; store the report.
    Records managers only; NotFoundError for an unknown customer. Delete `blob_keys` after the commit."""
    require_records_manager(actor)
    reference = _reference(reference)
    if session.get(Customer, customer_id) is None:
        raise RecordsNotFoundError(f"customer {customer_id} not found")
    audit.lock_head(session)  # decided against holds nobody is placing at this moment (see holds.add_items)
    now = clock.now()
    request = ErasureRequest(customer_id=customer_id, reference=reference, requested_by=actor.username,
                             requested_at=now)
    session.add(request)
    session.flush()
    report = _Report()
    classes: dict[str, RetentionClass | None] = {}
    type_names: dict[str, str] = {}
    for documents in _chunks(session, customer_id):
        _decide_chunk(session, documents=documents, request=request, actor=actor, now=now, classes=classes,
                      type_names=type_names, report=report)
        session.flush()
        for document in documents:  # decided and written: let the session forget them
            if document in session:
                session.expunge(document)
    request.erased, request.kept = len(report.erased), len(report.kept)
    request.report = report.as_dict()
    counts = {"customer_id": customer_id, "reference": reference, "erased": request.erased, "kept": request.kept}
    note(session, actor=actor.username, action=names.ERASURE_REQUESTED, object_type="erasure_request",
         object_id=request.id, details=counts, event=names.ERASURE_REQUESTED, payload={"id": request.id, **counts})
    return ErasureResult(request, report.blob_keys)


def _visible(actor: User, object_type: str, object_id: str) -> None:
    """Erasure requests exist for records managers (and admins) alone; anyone else is told they do not exist."""
    if not {ADMIN, RECORDS_MANAGER} & set(actor.roles):
        raise deny_read(actor, object_type, object_id)


def get_erasure(session: Session, *, actor: User, erasure_id: str) -> ErasureRequest:
    """One erasure request with its report; 404 for a missing one or a caller who is not a records manager."""
    _visible(actor, "erasure_request", erasure_id)
    request = session.get(ErasureRequest, erasure_id)
    if request is None:
        raise RecordsNotFoundError(f"erasure request {erasure_id} not found")
    return request


def list_erasures(session: Session, *, actor: User, customer_id: str) -> list[ErasureRequest]:
    """A customer's erasure requests, newest first; 404 for an unknown customer or a caller who is not a records
    manager."""
    _visible(actor, "customer", customer_id)
    if session.get(Customer, customer_id) is None:
        raise RecordsNotFoundError(f"customer {customer_id} not found")
    return list(session.execute(select(ErasureRequest).where(ErasureRequest.customer_id == customer_id)
                                .order_by(ErasureRequest.requested_at.desc(), ErasureRequest.id)).scalars())
