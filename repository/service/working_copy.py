"""The private working copy of a checked-out document: content the lock holder saved but has not checked in yet
(as in Alfresco or CMIS). It is encrypted under the document's data key; check-in turns it into the next version
without copying, and cancelling or breaking the check-out, trashing the document, or another user's check-out after
the lock expired discards it (audited)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from repository import audit, events, guards, vault
from repository.content import StagedContent, detect_media_type
from repository.errors import NotCheckedOutError, NotFoundError, UnsupportedMediaTypeError
from repository.identity import username_of
from repository.models import Document, DocumentType, User
from repository.runtime import get_runtime
from repository.service.document_types import media_type_allowed
from repository.service.documents import get_document, lock_holder, writable_document
from repository.types import utcnow

WORKING_COPY_SAVED = "document.working_copy_saved"
# Every column of the working copy, for the statements that set or clear it in one go.
WORKING_COLUMNS = ("working_blob_key", "working_sha256", "working_size", "working_media_type", "working_filename",
                   "working_saved_at")
CLEARED = dict.fromkeys(WORKING_COLUMNS)


@dataclass(frozen=True)
class WorkingCopy:
    """A saved working copy: where it is and what it is."""

    document_id: str
    blob_key: str
    sha256: str
    size: int
    media_type: str
    filename: str
    saved_at: dt.datetime


def working_copy_of(document: Document) -> WorkingCopy | None:
    """The working copy recorded on a document row, if any (no access check)."""
    if document.working_blob_key is None:
        return None
    return WorkingCopy(document.id, document.working_blob_key, document.working_sha256 or "",
                       document.working_size or 0, document.working_media_type or "application/octet-stream",
                       document.working_filename or "", document.working_saved_at or document.updated_at)


def check_media_type(session: Session, document: Document, media_type: str) -> DocumentType:
    """The document's type, if it accepts content of this media type; UnsupportedMediaTypeError otherwise."""
    doc_type = session.get(DocumentType, document.document_type_id)
    if not media_type_allowed(doc_type, media_type):
        raise UnsupportedMediaTypeError(
            f"the content is {media_type}, which documents of type {doc_type.name!r} do not accept; "
            f"allowed: {', '.join(doc_type.allowed_media_types)}",
            media_type=media_type,
        )
    return doc_type


def _refuse_non_holder(session: Session, document: Document, actor: User, now: dt.datetime) -> None:
    holder = lock_holder(document, now)
    if holder == actor.id:
        return
    if holder is not None:
        raise NotCheckedOutError(
            f"document {document.id} is checked out by {username_of(session, holder)}, not by you"
        )
    raise NotCheckedOutError(f"you have not checked out document {document.id}; check it out first")


def save_working_copy(session: Session, *, actor: User, document_id: str, content: StagedContent) -> WorkingCopy:
    """Store content as the lock holder's working copy (replacing an earlier one); checked like a check-in."""
    runtime = get_runtime()
    document = writable_document(session, actor=actor, document_id=document_id, what="save a working copy")
    guards.check(session, document, "content")
    now = utcnow()
    _refuse_non_holder(session, document, actor, now)
    media_type = detect_media_type(content, runtime.archive_limits)
    check_media_type(session, document, media_type)
    key = vault.store_content(session, runtime, document_id=document_id, staged=content)
    values = {"working_blob_key": key, "working_sha256": content.sha256, "working_size": content.size,
              "working_media_type": media_type, "working_filename": content.filename, "working_saved_at": now}
    saved = session.execute(
        update(Document)
        .where(Document.id == document_id, Document.checked_out_by == actor.id, Document.lock_expires_at > now)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(document)
    if saved.rowcount != 1:  # the check-out ended meanwhile; the blob is left for gc
        _refuse_non_holder(session, document, actor, utcnow())
    audit.record(session, actor=actor.username, action="document.working_copy_saved", object_type="document",
                 object_id=document_id, details={"sha256": content.sha256, "size": content.size,
                                                 "media_type": media_type})
    events.emit(session, WORKING_COPY_SAVED, {"document_id": document_id, "user_id": actor.id})
    return working_copy_of(document)  # type: ignore[return-value]


def get_working_copy(session: Session, *, actor: User, document_id: str) -> WorkingCopy:
    """The caller's own working copy of a document they hold checked out; NotFoundError for anyone else."""
    document = get_document(session, actor=actor, document_id=document_id)
    working = working_copy_of(document)
    if working is None or lock_holder(document) != actor.id:
        raise NotFoundError(f"you have no working copy of document {document_id}")
    return working


def read_working_copy(
    session: Session, *, actor: User, document_id: str, start: int = 0, end: int | None = None
) -> tuple[WorkingCopy, Iterator[bytes]]:
    """The caller's working copy and a stream of its plaintext (or the byte range [start, end))."""
    working = get_working_copy(session, actor=actor, document_id=document_id)
    return working, vault.read_blob(session, get_runtime(), document_id=document_id, blob_key=working.blob_key,
                                    size=working.size, start=start, end=end)
