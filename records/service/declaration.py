"""Declaring a document a record: from then on its content and versions never change and it cannot be deleted;
metadata changes stay possible and are audited with old and new values; the filing date is fixed. Also the
repository guard that enforces this (and legal holds) on every change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from records import clock
from records import events as names
from records.errors import LegalHoldActiveError, RecordDeclaredError, RecordsError
from records.models import DECLARED, RecordInfo, RetentionClass
from records.service.classification import due_for, ensure_info, protect
from records.service.common import active_holds, note
from repository.access import RECORDS_MANAGER, can_write, deny_write
from repository.errors import DocumentStateError
from repository.guards import Operation
from repository.models import Document, DocumentType, User
from repository.service.documents import get_document, lock_holder

_REFUSED = {"checkout": "checked out", "content": "given new content", "trash": "deleted"}


def mark_declared(session: Session, info: RecordInfo, *, actor: str) -> None:
    """Declare a classified document (no checks: the caller made them); a class counting from declaration
    starts its clock now."""
    now = clock.now()
    info.declared_at, info.declared_by, info.updated_at = now, actor, now
    cls = session.get(RetentionClass, info.class_id) if info.class_id else None
    if cls is not None and cls.trigger == DECLARED and info.trigger_at is None:
        info.trigger_at, info.due_at = now, due_for(cls, now)
    note(session, actor=actor, action=names.RECORD_DECLARED, object_type="document", object_id=info.document_id,
         details={"class": cls.code if cls else None, "due_at": info.due_at.isoformat() if info.due_at else None},
         event=names.RECORD_DECLARED, payload={"document_id": info.document_id})
    protect(session, info)


def declare(session: Session, *, actor: User, document_id: str) -> RecordInfo:
    """Declare a document a record (records managers, or anyone who may change the document). It must be in
    use (not in the trash) and not checked out, so the record is the content as it stands."""
    document = get_document(session, actor=actor, document_id=document_id)
    doc_type = session.get(DocumentType, document.document_type_id)
    if RECORDS_MANAGER not in actor.roles and not can_write(actor, doc_type):
        raise deny_write(actor, "document", document_id, "declare this document a record")
    if document.state != "active":
        raise DocumentStateError(f"document {document_id} is in the trash; restore it before declaring it")
    if lock_holder(document) is not None:
        raise RecordsError(f"document {document_id} is checked out; check it in or cancel the check-out first, so "
                           "the record is final")
    info = ensure_info(session, document)
    if info.declared_at is not None:
        raise RecordDeclaredError(f"document {document_id} was already declared a record on "
                                  f"{info.declared_at.isoformat()} by {info.declared_by}")
    if info.disposition not in ("active", "review"):
        raise RecordsError(f"document {document_id} is {info.disposition} in disposition; it cannot be declared")
    mark_declared(session, info, actor=actor.username)
    return info


def guard(session: Session, document: Document, operation: Operation) -> None:
    """Repository guard: a declared record is never checked out, given content or deleted; a held document is
    never deleted."""
    info = session.get(RecordInfo, document.id)
    if info is not None and info.declared_at is not None:
        raise RecordDeclaredError(
            f"document {document.id} is a record (declared {info.declared_at.isoformat()} by {info.declared_by}); "
            f"it cannot be {_REFUSED[operation]}: a record's content and versions never change",
            declared_at=info.declared_at.isoformat())
    if operation == "trash":
        holds = active_holds(session, document.id)
        if holds:
            raise LegalHoldActiveError(f"document {document.id} is under legal hold ({', '.join(holds)}); it cannot "
                                       "be deleted until every hold on it is released", holds=holds)


@dataclass(frozen=True)
class RecordView:
    """A document's records state as the API shows it."""

    document_id: str
    classified: bool
    class_code: str | None
    class_title: str | None
    trigger: str | None
    trigger_at: Any
    due_at: Any
    declared: bool
    declared_at: Any
    declared_by: str | None
    disposition: str
    held: bool
    holds: list[str]
    restricted: bool


def record_view(session: Session, *, actor: User, document_id: str) -> RecordView:
    """The records state of a document the actor may read (hold ids only for records managers)."""
    document = get_document(session, actor=actor, document_id=document_id)
    info = session.get(RecordInfo, document_id)
    cls = session.get(RetentionClass, info.class_id) if info is not None and info.class_id else None
    holds = active_holds(session, document_id)
    return RecordView(
        document_id=document_id, classified=cls is not None, class_code=cls.code if cls else None,
        class_title=cls.title if cls else None, trigger=cls.trigger if cls else None,
        trigger_at=info.trigger_at if info else None, due_at=info.due_at if info else None,
        declared=bool(info and info.declared_at), declared_at=info.declared_at if info else None,
        declared_by=info.declared_by if info else None, disposition=info.disposition if info else "active",
        held=bool(holds), holds=holds if RECORDS_MANAGER in actor.roles or "admin" in actor.roles else [],
        restricted=document.restricted)
