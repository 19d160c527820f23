"""WebDAV lock rows (`dav_locks`) and what releasing one means. A lock on a document is its check-out, so releasing
the holder's last lock on it checks the working copy in as the next minor version or, with none saved, cancels the
check-out. UNLOCK releases one lock (api/dav/_locks.py); MOVE and DELETE release the locks on what they move or
delete in the same transaction as the change itself, so a refused check-in leaves nothing moved or deleted."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session
from wsgidav.lock_man.lock_manager import normalize_lock_root

from repository import service as repo
from repository.models import DavLock, Document, User
from repository.service.documents import lock_holder
from repository.service.working_copy import working_copy_of
from repository.types import utcnow


def valid(now: dt.datetime):  # noqa: ANN201
    """Unexpired locks, and for document locks only while their holder still has the document checked out (the
    repository deletes a document's locks when its check-out ends; an expired check-out voids them here)."""
    checked_out = exists().where(Document.id == DavLock.document_id, Document.checked_out_by == DavLock.user_id,
                                 Document.lock_expires_at > now)
    return and_(DavLock.expires_at > now, or_(DavLock.document_id.is_(None), checked_out))


def at(path: str, *, include_root: bool = True, include_children: bool = False):  # noqa: ANN201
    """Locks rooted at `path` and/or below it."""
    path = normalize_lock_root(path)
    wanted = []
    if include_root:
        wanted.append(DavLock.root == path)
    if include_children:
        wanted.append(DavLock.root.startswith(path.rstrip("/") + "/", autoescape=True))
    return or_(*wanted)


def release(session: Session, token: str, now: dt.datetime | None = None) -> bool:
    """Release a lock in the caller's transaction; False when there is no such lock. Releasing the holder's last
    valid lock on a document ends the check-out: the working copy is checked in (the content validators run, and a
    refusal raises, so the caller's transaction keeps the lock), or the check-out is cancelled."""
    now = now or utcnow()
    row = session.execute(select(DavLock.document_id, DavLock.user_id).where(DavLock.token == token)).first()
    if row is None:
        return False
    document_id, user_id = row
    session.execute(delete(DavLock).where(DavLock.token == token))
    if document_id is None:
        return True
    document = session.get(Document, document_id)
    others = session.execute(
        select(func.count()).select_from(DavLock)
        .where(DavLock.document_id == document_id, DavLock.user_id == user_id, valid(now))
    ).scalar_one()
    if document is None or lock_holder(document, now) != user_id or others:
        return True
    user = session.get(User, user_id)
    if working_copy_of(document) is not None:
        repo.checkin(session, actor=user, document_id=document_id, comment="checked in over WebDAV")
    else:
        repo.cancel_checkout(session, actor=user, document_id=document_id)
    return True


def release_at(session: Session, root: str, *, recursive: bool) -> None:
    """Release every valid lock on `root` (and below it when `recursive`) in the caller's transaction, as a MOVE
    or DELETE does (RFC 4918: locks do not move with a resource)."""
    now = utcnow()
    found = select(DavLock.token).where(at(root, include_children=recursive), valid(now))
    tokens = session.execute(found).scalars().all()
    for token in tokens:
        release(session, token, now)  # one check-in may have voided later tokens: they are skipped
