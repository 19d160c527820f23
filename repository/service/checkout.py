"""Check-out and check-in: an exclusive, expiring lock for one user; check-in adds a version and releases it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.orm import Session

from repository import audit, events, guards, validators, vault
from repository.access import ADMIN, can_write, deny_write
from repository.config import get_settings
from repository.content import StagedContent
from repository.errors import (
    DocumentLockedError,
    DocumentStateError,
    IntegrityError,
    InvalidInputError,
    NotCheckedOutError,
)
from repository.identity import username_of
from repository.models import DavLock, Document, DocumentType, DocumentVersion, User
from repository.runtime import get_runtime
from repository.service.documents import add_version, lock_holder, writable_document
from repository.service.working_copy import (
    CLEARED,
    WORKING_COLUMNS,
    WorkingCopy,
    check_media_type,
    working_copy_of,
)
from repository.types import utcnow


def _not_holder(session: Session, document: Document, actor: User, now: dt.datetime) -> NotCheckedOutError:
    holder = lock_holder(document, now)
    if holder and holder != actor.id:
        return NotCheckedOutError(
            f"document {document.id} is checked out by {username_of(session, holder)}, not by you"
        )
    if document.checked_out_by == actor.id:
        return NotCheckedOutError(f"your check-out of document {document.id} expired; check it out again")
    return NotCheckedOutError(f"you have not checked out document {document.id}; check it out first")


def void_locks(session: Session, *, document_id: str, keep_user_id: str | None = None) -> None:
    """Delete the WebDAV locks on a document (`dav_locks` rows, see api/dav/_locks.py) when its check-out ends or
    passes to another user, so that no stale lock token comes back to life with a later check-out; `keep_user_id`
    keeps that user's own."""
    stmt = delete(DavLock).where(DavLock.document_id == document_id)
    if keep_user_id is not None:
        stmt = stmt.where(DavLock.user_id != keep_user_id)
    session.execute(stmt)


def prepare_upload(session: Session, *, actor: User, document_id: str | None = None) -> vault.Sealer:
    """Get ready to receive content: for a new document (fresh id), or for a check-in by the lock holder,
    refused before any byte is received when the caller may not check in."""
    runtime = get_runtime()
    if document_id is None:
        if not any(can_write(actor, t) for t in session.execute(select(DocumentType)).scalars()):
            raise deny_write(actor, "document_type", None,
                             f"create documents: your roles ({', '.join(actor.roles)}) may write no document type")
        return vault.open_sealer(session, runtime, document_id=None)
    document = writable_document(session, actor=actor, document_id=document_id, what="check in this document")
    guards.check(session, document, "content")
    now = utcnow()
    if lock_holder(document, now) != actor.id:
        raise _not_holder(session, document, actor, now)
    return vault.open_sealer(session, runtime, document_id=document_id)


def checkout(session: Session, *, actor: User, document_id: str) -> Document:
    """Take the exclusive lock; the holder calling again extends it. DocumentLockedError if someone else holds it.
    A working copy survives only a check-out by the same user: taking over an expired check-out discards the
    previous holder's (audited) and their WebDAV locks."""
    document = writable_document(session, actor=actor, document_id=document_id, what="check out this document")
    guards.check(session, document, "checkout")
    now = utcnow()
    previous_holder = document.checked_out_by  # as loaded before the update
    discarded = working_copy_of(document) if previous_holder != actor.id else None
    expires = now + dt.timedelta(hours=get_settings().lock_lifetime_hours)
    same_holder = Document.checked_out_by == actor.id
    keep_working = {c: case((same_holder, getattr(Document, c)), else_=None) for c in WORKING_COLUMNS}
    # One conditional UPDATE decides the race: exactly one concurrent caller sees rowcount 1.
    result = session.execute(
        update(Document)
        .where(
            Document.id == document_id,
            or_(
                Document.checked_out_by.is_(None),
                Document.checked_out_by == actor.id,
                Document.lock_expires_at <= now,
            ),
        )
        .values(checked_out_by=actor.id, checked_out_at=now, lock_expires_at=expires, revision=Document.revision + 1,
                **keep_working)
        .execution_options(synchronize_session=False)
    )
    session.refresh(document)
    if result.rowcount != 1:
        holder = document.checked_out_by
        raise DocumentLockedError(
            f"document {document_id} is checked out by {username_of(session, holder)} until "
            f"{document.lock_expires_at.isoformat()}",
            checked_out_by=username_of(session, holder),
            expires_at=document.lock_expires_at.isoformat(),
        )
    details = {"expires_at": expires.isoformat()}
    if previous_holder is not None and previous_holder != actor.id:
        details["previous_holder"] = username_of(session, previous_holder)
        void_locks(session, document_id=document_id, keep_user_id=actor.id)
    if discarded is not None:
        details["discarded_working_copy"] = discarded.sha256
    audit.record(session, actor=actor.username, action="document.checked_out", object_type="document",
                 object_id=document_id, details=details)
    events.emit(session, events.DOCUMENT_CHECKED_OUT, {"document_id": document_id, "user_id": actor.id})
    return document


def checkin(
    session: Session,
    *,
    document_id: str,
    actor: User,
    content: StagedContent | None = None,
    major: bool = False,
    comment: str = "",
) -> DocumentVersion:
    """Add the next version from the lock holder and release the lock; without `content` the holder's working
    copy becomes the version (InvalidInputError when there is none). A working copy is cleared either way, and
    the holder's WebDAV locks are deleted."""
    document = writable_document(session, actor=actor, document_id=document_id, what="check in this document")
    guards.check(session, document, "content")
    now = utcnow()
    working = working_copy_of(document) if content is None else None
    if content is None and working is None and lock_holder(document, now) == actor.id:
        raise InvalidInputError(f"document {document_id} has no working copy to check in; save one "
                                "(PUT .../working-copy) or send the content in a 'file' part", field="file")
    holds = [Document.id == document_id, Document.checked_out_by == actor.id, Document.lock_expires_at > now]
    if working is not None:  # the version must be the working copy that was read above, not a newer save
        holds.append(Document.working_blob_key == working.blob_key)
    released = session.execute(
        update(Document)
        .where(*holds)
        .values(checked_out_by=None, checked_out_at=None, lock_expires_at=None, revision=Document.revision + 1,
                updated_at=now, **CLEARED)
        .execution_options(synchronize_session=False)
    )
    if released.rowcount != 1:
        session.refresh(document)
        if working is not None and lock_holder(document, now) == actor.id:
            raise DocumentStateError(f"the working copy of document {document_id} changed meanwhile; try again")
        raise _not_holder(session, document, actor, now)
    void_locks(session, document_id=document_id)
    session.refresh(document)
    if working is not None:
        version = _version_from_working_copy(session, document, actor, working, major, comment)
    else:
        version = add_version(session, document=document, actor=actor, content=content, major=major,
                              comment=comment)
    audit.record(session, actor=actor.username, action="document.checked_in", object_type="document",
                 object_id=document_id, details={"version": version.label, "sha256": version.sha256,
                                                 "size": version.size, "comment": version.comment,
                                                 "from_working_copy": working is not None})
    events.emit(session, events.DOCUMENT_CHECKED_IN, {"document_id": document_id, "version": version.label})
    return version


def _version_from_working_copy(
    session: Session, document: Document, actor: User, working: WorkingCopy, major: bool, comment: str
) -> DocumentVersion:
    """The next version pointing at the working copy's blob (no copy), after the same checks as new content."""
    doc_type = check_media_type(session, document, working.media_type)

    def reopen():  # noqa: ANN202
        return vault.open_blob(session, get_runtime(), document_id=document.id, blob_key=working.blob_key,
                               size=working.size)

    validators.validate(session, validators.Candidate(
        document_type=doc_type.name, document_id=document.id, media_type=working.media_type,
        filename=working.filename, size=working.size, open=reopen,
    ))
    if not get_runtime().store.refresh(working.blob_key):  # refreshed: a young blob again, which gc spares
        raise IntegrityError(f"the working copy of document {document.id} is missing from the blob store")
    new = (document.current_major + 1, 0) if major else (document.current_major, document.current_minor + 1)
    version = DocumentVersion(
        document_id=document.id, major=new[0], minor=new[1], blob_key=working.blob_key, sha256=working.sha256,
        size=working.size, media_type=working.media_type, filename=working.filename, created_by=actor.id,
        comment=(comment or "")[:2000],
    )
    session.add(version)
    document.current_major, document.current_minor = new
    return version


def cancel_checkout(session: Session, *, actor: User, document_id: str, reason: str | None = None) -> Document:
    """The holder cancels their check-out; an admin may break another user's, giving a reason. Either way the
    holder's working copy is discarded and their WebDAV locks are deleted."""
    document = writable_document(session, actor=actor, document_id=document_id, what="cancel this check-out")
    now = utcnow()
    holder = lock_holder(document, now)
    if holder is None:
        raise NotCheckedOutError(f"document {document_id} is not checked out")
    breaking = holder != actor.id
    if breaking:
        if ADMIN not in actor.roles:
            raise deny_write(actor, "document", document_id, "break another user's check-out (admins only)")
        if not (reason or "").strip():
            raise InvalidInputError("breaking another user's check-out needs a reason", field="reason")
    result = session.execute(
        update(Document)
        .where(Document.id == document_id, Document.checked_out_by == holder)
        .values(checked_out_by=None, checked_out_at=None, lock_expires_at=None, revision=Document.revision + 1,
                **CLEARED)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise NotCheckedOutError(f"the check-out of document {document_id} changed meanwhile; try again")
    void_locks(session, document_id=document_id)
    discarded = working_copy_of(document)  # as loaded before the update
    session.refresh(document)
    action = "document.checkout_broken" if breaking else "document.checkout_cancelled"
    details = {"holder": username_of(session, holder)}
    if discarded is not None:
        details["discarded_working_copy"] = discarded.sha256
    if breaking:
        details["reason"] = reason.strip()
    audit.record(session, actor=actor.username, action=action, object_type="document", object_id=document_id,
                 details=details)
    events.emit(session, events.DOCUMENT_CHECKOUT_CANCELLED, {"document_id": document_id, "broken": breaking})
    return document
