"""The certificate of destruction of an executed disposition batch: a JSON document listing what was destroyed
or transferred (with the rule, due date and version hashes of each), what was reviewed, excluded or skipped and
why, and who approved it; stored as a repository document of type `certificate` and declared a record."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from records.errors import DispositionStateError
from records.models import DispositionBatch, DispositionItem, RetentionClass, Tombstone
from records.service.classification import ensure_info
from records.service.common import SYSTEM
from records.service.declaration import mark_declared
from records.service.disposition.states import REVIEWED, SKIPPED
from repository.access import ADMIN
from repository.config import get_settings
from repository.content import stage_stream
from repository.models import Document, User
from repository.service.documents import create_document

DOCUMENT_TYPE = "certificate"
FORMAT = "postroom-certificate-of-destruction/1"


def _when(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _disposed(session: Session, batch_id: str) -> list[dict[str, Any]]:
    rows = session.execute(select(Tombstone).where(Tombstone.batch_id == batch_id)
                           .order_by(Tombstone.document_id)).scalars()
    return [{"document_id": t.document_id, "document_type": t.document_type, "class_code": t.class_code,
             "rule": t.rule, "action": t.action, "created_at": _when(t.created_at), "declared_at": _when(t.declared_at),
             "due_at": _when(t.due_at), "destroyed_at": _when(t.destroyed_at), "versions": t.versions,
             "erasure_id": t.erasure_id, "transfer_package": t.transfer_package} for t in rows]


def _others(session: Session, batch_id: str) -> dict[str, list[dict[str, Any]]]:
    rows = session.execute(
        select(DispositionItem, RetentionClass.code)
        .outerjoin(RetentionClass, RetentionClass.id == DispositionItem.class_id)
        .where(DispositionItem.batch_id == batch_id,
               or_(DispositionItem.excluded.is_(True), DispositionItem.outcome.in_((REVIEWED, SKIPPED))))
        .order_by(DispositionItem.document_id)).all()
    out: dict[str, list[dict[str, Any]]] = {"reviewed": [], "excluded": [], "skipped": []}
    for item, code in rows:
        entry = {"document_id": item.document_id, "class_code": code, "action": item.action,
                 "due_at": _when(item.due_at)}
        if item.excluded:
            out["excluded"].append({**entry, "reason": item.exclude_reason, "excluded_by": item.excluded_by})
        elif item.outcome == SKIPPED:
            out["skipped"].append({**entry, "reason": item.outcome_note})
        else:
            out["reviewed"].append(entry)
    return out


def certificate_body(session: Session, batch: DispositionBatch, executed_at: dt.datetime) -> dict[str, Any]:
    """What the certificate of an executed batch says."""
    disposed = _disposed(session, batch.id)
    return {"format": FORMAT, "batch_id": batch.id, "as_of": _when(batch.as_of), "proposed_by": batch.proposed_by,
            "proposed_at": _when(batch.proposed_at), "approved_by": batch.approved_by,
            "approved_at": _when(batch.approved_at), "executed_at": _when(executed_at),
            "transfer_package": (batch.summary or {}).get("transfer"),
            "counts": {"destroyed": sum(1 for d in disposed if d["action"] != "transfer"),
                       "transferred": sum(1 for d in disposed if d["action"] == "transfer")},
            "disposed": disposed, **_others(session, batch.id)}


def _author(session: Session, batch: DispositionBatch) -> User:
    """Who the certificate is filed by: the approver's account, acting as the records system (a records manager
    may not otherwise create `certificate` documents); never added to the session."""
    approver = session.execute(select(User).where(User.username == batch.approved_by)).scalar_one_or_none()
    if approver is None:
        raise DispositionStateError(f"disposition batch {batch.id} was approved by {batch.approved_by}, who is no "
                                    "longer a user; its certificate cannot be filed")
    return User(id=approver.id, username=SYSTEM, roles=[ADMIN], active=True)


def issue_certificate(session: Session, *, batch: DispositionBatch, executed_at: dt.datetime) -> Document:
    """File the certificate of an executed batch as a `certificate` document, declared a record."""
    data = json.dumps(certificate_body(session, batch, executed_at), indent=2, ensure_ascii=False).encode()
    settings = get_settings()
    staged = stage_stream(iter([data]), max_bytes=len(data) + 1, tmp_dir=settings.tmp_dir,
                          filename=f"certificate-of-destruction-{batch.id}.json")
    try:
        document = create_document(session, actor=_author(session, batch), document_type=DOCUMENT_TYPE,
                                   title=f"Certificate of destruction: disposition batch {batch.id}",
                                   content=staged, metadata={"disposition_batch_id": batch.id,
                                                             "format": FORMAT})
    finally:
        staged.release()
    session.flush()
    info = ensure_info(session, document)
    if info.declared_at is None:  # a class that declares automatically has done it already
        mark_declared(session, info, actor=batch.approved_by or SYSTEM)
    return document
