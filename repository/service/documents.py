"""Documents: create, read, list, update metadata, trash and restore; versions and their content."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from repository import audit, events, guards, validators, vault
from repository.access import can_read, can_see_restricted, can_write, deny_read, deny_write
from repository.content import StagedContent, detect_media_type
from repository.errors import (
    DocumentLockedError,
    DocumentStateError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
    UnsupportedMediaTypeError,
)
from repository.models import Customer, Document, DocumentType, DocumentVersion, User
from repository.runtime import get_runtime
from repository.service.document_types import get_type, media_type_allowed
from repository.types import new_id, utcnow

ACTIVE, TRASHED, DESTROYED = "active", "trashed", "destroyed"
_LABEL = re.compile(r"^(\d{1,6})\.(\d{1,6})$")
MAX_METADATA_BYTES = 64 * 1024


@dataclass(frozen=True)
class Page:
    """One page of a listing and the cursor for the next, if any."""

    items: list[Document]
    next_cursor: str | None


def parse_label(label: str) -> tuple[int, int]:
    """Split "major.minor"; InvalidInputError for anything else."""
    m = _LABEL.match(label or "")
    if not m:
        raise InvalidInputError(f"version {label!r} is not a version label like 1.0 or 2.3")
    return int(m.group(1)), int(m.group(2))


def check_metadata(metadata: Any) -> dict[str, Any]:
    """Metadata must be a JSON object of bounded size."""
    if not isinstance(metadata, dict):
        raise InvalidInputError("metadata must be a JSON object")
    try:
        encoded = json.dumps(metadata, allow_nan=False)
    except (ValueError, RecursionError) as exc:  # NaN/Infinity are not JSON; PostgreSQL refuses them
        raise InvalidInputError("metadata must be plain JSON: numbers finite, not nested too deeply",
                                field="metadata") from exc
    if re.search(r"(?<!\\)(?:\\\\)*\\u0000", encoded):  # jsonb cannot store NUL characters; refuse everywhere
        raise InvalidInputError("metadata text must not contain NUL characters", field="metadata")
    if len(encoded) > MAX_METADATA_BYTES:
        raise InvalidInputError(f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    return metadata


def lock_holder(document: Document, now: dt.datetime | None = None) -> str | None:
    """The id of the user holding an unexpired check-out, or None."""
    now = now or utcnow()
    if document.checked_out_by and document.lock_expires_at and document.lock_expires_at > now:
        return document.checked_out_by
    return None


def _doc_type(session: Session, document: Document) -> DocumentType:
    return session.get(DocumentType, document.document_type_id)


def readable(session: Session, actor: User, document: Document) -> bool:
    """True when the actor may read this document: its type allows it, it is not restricted from them (or they
    are a records manager), and it has not been destroyed."""
    if document.state == DESTROYED or (document.restricted and not can_see_restricted(actor)):
        return False
    return can_read(actor, _doc_type(session, document))


def get_document(session: Session, *, actor: User, document_id: str, include_trashed: bool = True) -> Document:
    """The document if the actor may read it; NotFoundError otherwise (a denied read looks the same)."""
    document = session.get(Document, document_id)
    if document is None or document.state == DESTROYED or (document.state == TRASHED and not include_trashed):
        raise NotFoundError(f"document {document_id} not found")
    if not readable(session, actor, document):
        raise deny_read(actor, "document", document_id)
    return document


def writable_document(session: Session, *, actor: User, document_id: str, what: str) -> Document:
    """The document if the actor may change it: readable, writable type, not in the trash."""
    document = get_document(session, actor=actor, document_id=document_id)
    if not can_write(actor, _doc_type(session, document)):
        raise deny_write(actor, "document", document_id, what)
    if document.state == TRASHED:
        raise DocumentStateError(f"document {document_id} is in the trash; restore it first")
    return document


def create_document(
    session: Session,
    *,
    actor: User,
    title: str,
    document_type: str,
    content: StagedContent,
    customer_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    comment: str = "",
) -> Document:
    """Store a new document with its first version, 1.0."""
    runtime = get_runtime()
    title = check_title(title)
    metadata = check_metadata(metadata if metadata is not None else {})
    document_id = content.document_id or new_id()
    # Inspect and store the content before the first statement: on SQLite that statement takes the write lock,
    # and scanning and fsyncing an upload must not hold every other writer up. A refusal below removes the blob
    # again; it belongs to this new document alone.
    media_type = detect_media_type(content, runtime.archive_limits)
    key = vault.store_content(session, runtime, document_id=document_id, staged=content, new_document=True)
    try:
        with session.no_autoflush:  # the new data key may only be written after its document
            doc_type = get_type(session, name=document_type)
            if not can_write(actor, doc_type):
                raise deny_write(actor, "document_type", doc_type.id, f"create documents of type {document_type!r}")
            if customer_id is not None and session.get(Customer, customer_id) is None:
                raise InvalidInputError(f"customer {customer_id} does not exist", field="customer_id")
            check_new_content(session, doc_type, None, media_type, content)
        document = Document(id=document_id, title=title, document_type_id=doc_type.id, customer_id=customer_id,
                            meta=metadata, created_by=actor.id)
        session.add(document)
        version = _new_version(document, actor, content, media_type, key, 1, 0, comment)
        session.add(version)
    except BaseException:
        runtime.store.delete(key)
        for pending in [o for o in session.new if getattr(o, "document_id", None) == document_id]:
            session.expunge(pending)  # a refused upload leaves nothing for the caller to commit
        raise
    audit.record(session, actor=actor.username, action="document.created", object_type="document",
                 object_id=document.id, details={"title": title, "document_type": document_type,
                                                 "version": version.label, "sha256": version.sha256})
    events.emit(session, events.DOCUMENT_CREATED, {"document_id": document.id, "version": version.label,
                                                   "document_type": document_type, "customer_id": customer_id})
    return document


def check_title(title: str | None) -> str:
    """The title, stripped; InvalidInputError unless it has 1-500 characters."""
    title = (title or "").strip()
    if not title or len(title) > 500:
        raise InvalidInputError("title must be 1-500 characters")
    return title


def check_new_content(session: Session, doc_type: DocumentType, document_id: str | None, media_type: str,
                      content: StagedContent) -> None:
    """Refuse content the document type does not accept, by media type and by the type's validators."""
    _check_allowed(doc_type, media_type)
    validators.validate(session, _candidate(doc_type, document_id, media_type, content))


def _check_allowed(doc_type: DocumentType, media_type: str) -> None:
    if not media_type_allowed(doc_type, media_type):
        raise UnsupportedMediaTypeError(
            f"the content is {media_type}, which documents of type {doc_type.name!r} do not accept; "
            f"allowed: {', '.join(doc_type.allowed_media_types)}",
            media_type=media_type,
        )


def _candidate(doc_type: DocumentType, document_id: str | None, media_type: str,
               content: StagedContent) -> validators.Candidate:
    return validators.Candidate(document_type=doc_type.name, document_id=document_id, media_type=media_type,
                                filename=content.filename, size=content.size, open=content.open)


def _new_version(
    document: Document, actor: User, content: StagedContent, media_type: str, key: str,
    major: int, minor: int, comment: str,
) -> DocumentVersion:
    return DocumentVersion(
        document_id=document.id, major=major, minor=minor, blob_key=key, sha256=content.sha256,
        size=content.size, media_type=media_type, filename=content.filename, created_by=actor.id,
        comment=(comment or "")[:2000],
    )


def add_version(
    session: Session, *, document: Document, actor: User, content: StagedContent, major: bool, comment: str
) -> DocumentVersion:
    """Add the next version (minor, or next major) to a document the caller has already locked."""
    runtime = get_runtime()
    media_type = detect_media_type(content, runtime.archive_limits)
    doc_type = _doc_type(session, document)
    check_new_content(session, doc_type, document.id, media_type, content)
    new = (document.current_major + 1, 0) if major else (document.current_major, document.current_minor + 1)
    key = vault.store_content(session, runtime, document_id=document.id, staged=content)
    version = _new_version(document, actor, content, media_type, key, *new, comment)
    session.add(version)
    document.current_major, document.current_minor = new
    return version


def list_documents(
    session: Session,
    *,
    actor: User,
    document_type: str | None = None,
    customer_id: str | None = None,
    trashed: bool = False,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """Documents the actor may read, newest first, one page at a time."""
    limit = min(max(limit, 1), 200)
    types = list(session.execute(select(DocumentType)).scalars())
    if document_type is not None:
        types = [t for t in types if t.name == document_type]
        if not types:
            raise InvalidInputError(f"there is no document type {document_type!r}", field="document_type")
    type_ids = [t.id for t in types if can_read(actor, t)]
    stmt = select(Document).where(Document.document_type_id.in_(type_ids))
    stmt = stmt.where(Document.state == (TRASHED if trashed else ACTIVE))
    if not can_see_restricted(actor):
        stmt = stmt.where(Document.restricted.is_(False))
    if customer_id is not None:
        stmt = stmt.where(Document.customer_id == customer_id)
    if cursor:
        at, last_id = decode_cursor(cursor)
        stmt = stmt.where(or_(Document.created_at < at, and_(Document.created_at == at, Document.id < last_id)))
    stmt = stmt.order_by(Document.created_at.desc(), Document.id.desc()).limit(limit + 1)
    rows = list(session.execute(stmt).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1]) if more else None)


def encode_cursor(document: Document) -> str:
    """A listing cursor after this row (newest-first listings ordered by created_at, id)."""
    raw = json.dumps([document.created_at.isoformat(), document.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    """The (created_at, id) a cursor points after; InvalidInputError for a cursor we did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, last_id = json.loads(raw)
        when = dt.datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("cursor time without a zone")
        return when, str(last_id)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError("the cursor is not valid; use the next_cursor of a previous page") from exc


def update_document(
    session: Session,
    *,
    actor: User,
    document_id: str,
    expected_revision: int | None,
    title: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Document:
    """Change title and/or metadata if the revision still matches (optimistic concurrency)."""
    document = writable_document(session, actor=actor, document_id=document_id, what="change this document")
    holder = lock_holder(document)
    if holder and holder != actor.id:
        raise DocumentLockedError(f"document {document_id} is checked out by another user")
    changes: dict[str, Any] = {}
    if title is not None:
        title = title.strip()
        if not title or len(title) > 500:
            raise InvalidInputError("title must be 1-500 characters", field="title")
        changes["title"] = title
    if metadata is not None:
        changes["meta"] = check_metadata(metadata)
    if not changes:
        raise InvalidInputError("nothing to change: give title and/or metadata")
    old = {"title": document.title, "metadata": document.meta}
    revision = document.revision if expected_revision is None else expected_revision
    result = session.execute(
        update(Document)
        .where(Document.id == document_id, Document.revision == revision)
        .values(**changes, revision=revision + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise PreconditionFailedError(
            f"document {document_id} was changed by someone else; fetch it again and retry with its new ETag"
        )
    session.refresh(document)
    new = {"title": document.title, "metadata": document.meta}
    audit.record(session, actor=actor.username, action="document.updated", object_type="document",
                 object_id=document_id, details={"old": old, "new": new})
    events.emit(session, events.DOCUMENT_UPDATED, {"document_id": document_id, "revision": document.revision})
    return document


def trash_document(session: Session, *, actor: User, document_id: str) -> Document:
    """Move a document to the trash (restorable). Its check-out ends: the working copy is discarded (audited; gc
    may then remove its blob) and the WebDAV locks are deleted."""
    # Imported here: both modules import this one.
    from repository.service.checkout import void_locks
    from repository.service.working_copy import CLEARED

    document = writable_document(session, actor=actor, document_id=document_id, what="delete this document")
    guards.check(session, document, "trash")
    holder = lock_holder(document)
    if holder and holder != actor.id:
        raise DocumentLockedError(f"document {document_id} is checked out by another user")
    details = {}
    if document.working_blob_key is not None:
        details["discarded_working_copy"] = document.working_sha256
    document.state, document.trashed_at, document.trashed_by = TRASHED, utcnow(), actor.id
    document.checked_out_by = document.checked_out_at = document.lock_expires_at = None
    for column in CLEARED:
        setattr(document, column, None)
    document.revision += 1
    void_locks(session, document_id=document_id)
    audit.record(session, actor=actor.username, action="document.trashed", object_type="document",
                 object_id=document_id, details=details)
    events.emit(session, events.DOCUMENT_TRASHED, {"document_id": document_id})
    return document


def restore_document(session: Session, *, actor: User, document_id: str) -> Document:
    """Bring a document back from the trash."""
    document = get_document(session, actor=actor, document_id=document_id)
    if not can_write(actor, _doc_type(session, document)):
        raise deny_write(actor, "document", document_id, "restore this document")
    if document.state != TRASHED:
        raise DocumentStateError(f"document {document_id} is not in the trash")
    document.state, document.trashed_at, document.trashed_by = ACTIVE, None, None
    document.revision += 1
    audit.record(session, actor=actor.username, action="document.restored", object_type="document",
                 object_id=document_id)
    events.emit(session, events.DOCUMENT_RESTORED, {"document_id": document_id})
    return document


def list_versions(session: Session, *, actor: User, document_id: str) -> list[DocumentVersion]:
    """Every version of a readable document, oldest first."""
    get_document(session, actor=actor, document_id=document_id)
    stmt = (
        select(DocumentVersion)
        .where(DocumentVersion.document_id == document_id)
        .order_by(DocumentVersion.major, DocumentVersion.minor)
    )
    return list(session.execute(stmt).scalars())


def get_version(session: Session, *, actor: User, document_id: str, version: str | None = None) -> DocumentVersion:
    """A version of a readable document, the current one when `version` is None."""
    document = get_document(session, actor=actor, document_id=document_id)
    major, minor = parse_label(version) if version else (document.current_major, document.current_minor)
    row = session.execute(
        select(DocumentVersion).where(
            DocumentVersion.document_id == document_id, DocumentVersion.major == major, DocumentVersion.minor == minor
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"document {document_id} has no version {major}.{minor}")
    return row


def read_version(
    session: Session, *, version: DocumentVersion, start: int = 0, end: int | None = None
) -> Iterator[bytes]:
    """Stream a version's plaintext (or a byte range of it); read access must already be checked."""
    return vault.read_content(session, runtime=get_runtime(), version=version, start=start, end=end)
