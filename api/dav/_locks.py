"""WebDAV locks in the database (so every server process sees them, and they survive a restart), tied to the
repository's check-out: locking a document checks it out, refreshing the lock extends the check-out, and releasing
the last lock checks the working copy in as the next minor version (or cancels the check-out when nothing was
saved; see api/dav/_lockrows.py). A check-out that ends some other way (checked in, cancelled or broken through
the API, the document trashed, or taken over by another user after it expired) deletes its locks; an expired one
voids them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, not_, select
from sqlalchemy.orm import Session
from wsgidav.dav_error import HTTP_FORBIDDEN, HTTP_PRECONDITION_FAILED, DAVError
from wsgidav.lock_man.lock_manager import LockManager, generate_lock_token, normalize_lock_root

from api.dav._common import actor, current_environ, service
from api.dav._documents import DocumentFile
from api.dav._files import FolderCollection, check_can_write_folders
from api.dav._lockrows import at, release, valid
from repository import service as repo
from repository.config import get_settings
from repository.models import DavLock
from repository.types import utcnow

MAX_ROOT = 2000


def _as_dict(row: DavLock) -> dict:
    return {"root": row.root, "type": "write", "scope": row.scope, "depth": row.depth, "owner": row.owner,
            "timeout": row.timeout, "principal": row.principal, "token": row.token,
            "expire": row.expires_at.timestamp()}


def _lifetime() -> int:
    return max(1, int(get_settings().lock_lifetime_hours * 3600))


def _timeout(requested: float | None) -> int:
    """The client's timeout, at most the check-out lifetime (an infinite lock is not granted)."""
    lifetime = _lifetime()
    if requested is None or requested <= 0 or requested > lifetime:
        return lifetime
    return int(requested)


class RepositoryLockStorage:
    """Lock storage for wsgidav's LockManager (same interface as wsgidav's LockStorageDict)."""

    def __init__(self, provider) -> None:  # noqa: ANN001
        self.provider = provider

    def __repr__(self) -> str:
        return "RepositoryLockStorage"

    def open(self) -> None:
        """Nothing to open: the database is there."""

    def close(self) -> None:
        """Nothing to close."""

    def cleanup(self) -> None:
        """Remove void locks."""
        with service() as session:
            self._purge(session, utcnow())

    def clear(self) -> None:
        """Remove every lock."""
        with service() as session:
            session.execute(delete(DavLock))

    @staticmethod
    def _purge(session: Session, now: dt.datetime) -> None:
        session.execute(delete(DavLock).where(not_(valid(now))).execution_options(synchronize_session=False))

    def get(self, token: str) -> dict | None:
        """The lock with this token, if it is valid."""
        with service(readonly=True) as session:
            row = session.execute(select(DavLock).where(DavLock.token == token, valid(utcnow()))).scalar_one_or_none()
            return _as_dict(row) if row else None

    def _document_at(self, path: str) -> str | None:
        """The document a lock on `path` checks out; None for a folder (which the caller must be able to
        change: a reader's lock would hold the writers up)."""
        environ = current_environ()
        res = self.provider.get_resource_inst(self.provider.ref_url_to_path(path), environ)
        if isinstance(res, DocumentFile):
            return res.document_id
        if isinstance(res, FolderCollection):
            check_can_write_folders(environ, res.folder.id)
            return None
        raise DAVError(HTTP_FORBIDDEN, "this resource cannot be locked")

    def create(self, path: str, lock: dict) -> dict:
        """Store a new lock; a lock on a document checks it out to the caller first (423 if someone else has)."""
        path = normalize_lock_root(path)
        if len(path) > MAX_ROOT:
            raise DAVError(HTTP_FORBIDDEN, "the path is too long to lock")
        user = actor(current_environ())
        document_id = self._document_at(path)
        now = utcnow()
        with service() as session:
            self._purge(session, now)
            if document_id is not None:
                expires = repo.checkout(session, actor=user, document_id=document_id).lock_expires_at
                timeout = max(1, int((expires - now).total_seconds()))
            else:
                timeout = _timeout(lock.get("timeout"))
                expires = now + dt.timedelta(seconds=timeout)
            row = DavLock(token=generate_lock_token(), root=path, principal=user.username, user_id=user.id,
                          scope=lock["scope"], depth=lock["depth"], owner=lock.get("owner") or b"", timeout=timeout,
                          expires_at=expires, document_id=document_id)
            session.add(row)
            session.flush()
            lock.update(_as_dict(row))
        return lock

    def refresh(self, token: str, *, timeout: float | None) -> dict:
        """Extend a lock (and its document's check-out); only its owner may."""
        user = actor(current_environ())
        now = utcnow()
        with service() as session:
            row = session.execute(select(DavLock).where(DavLock.token == token, valid(now))).scalar_one_or_none()
            if row is None:
                raise DAVError(HTTP_PRECONDITION_FAILED, "the lock has expired or was released")
            if row.user_id != user.id:
                raise DAVError(HTTP_FORBIDDEN, "the lock belongs to another user")
            if row.document_id is not None:
                row.expires_at = repo.checkout(session, actor=user, document_id=row.document_id).lock_expires_at
                row.timeout = max(1, int((row.expires_at - now).total_seconds()))
            else:
                row.timeout = _timeout(timeout)
                row.expires_at = now + dt.timedelta(seconds=row.timeout)
            return _as_dict(row)

    def delete(self, token: str) -> bool:
        """Forget a lock (no effect on check-outs)."""
        with service() as session:
            return session.execute(delete(DavLock).where(DavLock.token == token)).rowcount > 0

    def release(self, token: str) -> bool:
        """Release a lock; releasing the holder's last lock on a document ends its check-out: the working copy is
        checked in as the next minor version, or, with none saved, the check-out is cancelled."""
        with service() as session:
            return release(session, token)

    def get_lock_list(self, path: str, *, include_root: bool, include_children: bool, token_only: bool) -> list:
        """Valid locks on `path` and/or below it."""
        where = at(path, include_root=include_root, include_children=include_children)
        with service(readonly=True) as session:
            rows = session.execute(select(DavLock).where(where, valid(utcnow()))).scalars().all()
        return [r.token for r in rows] if token_only else [_as_dict(r) for r in rows]


class RepositoryLockManager(LockManager):
    """wsgidav's lock manager, whose release goes through the repository (see RepositoryLockStorage.release)."""

    def release(self, token: str) -> None:
        self.storage.release(token)
