"""What every WebDAV resource shares: the caller, service transactions with errors mapped to DAV statuses, dead
properties, and the writer a PUT body streams into (reading goes through repository.vault.open_blob)."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator

from sqlalchemy.exc import DataError as SQLDataError
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from wsgidav import xml_tools
from wsgidav.dav_error import (
    HTTP_CONFLICT,
    HTTP_FORBIDDEN,
    HTTP_LOCKED,
    HTTP_NOT_FOUND,
    HTTP_SERVICE_UNAVAILABLE,
    HTTP_UNAUTHORIZED,
    HTTP_UNPROCESSABLE_ENTITY,
    DAVError,
)
from wsgidav.util import etree

from api.dav import _props
from api.dav._lockrows import release_at
from api.errors import audit_denial, status_for
from repository import errors
from repository.db import transaction
from repository.models import User

log = logging.getLogger(__name__)
USER_KEY = "postroom.user"
_request: contextvars.ContextVar[dict] = contextvars.ContextVar("postroom_dav_request")


def current_environ() -> dict:
    """The WSGI environ of the request this thread is serving (set by the provider for each request)."""
    try:
        return _request.get()
    except LookupError as exc:
        raise DAVError(HTTP_UNAUTHORIZED, "no request in progress") from exc


@contextlib.contextmanager
def serving(environ: dict) -> Iterator[None]:
    """Make `environ` the current request for the block."""
    token = _request.set(environ)
    try:
        yield
    finally:
        _request.reset(token)


def actor(environ: dict) -> User:
    """The authenticated caller."""
    user = environ.get(USER_KEY)
    if user is None:
        raise DAVError(HTTP_UNAUTHORIZED, "sign in with HTTP Basic authentication")
    return user


def dav_error(exc: errors.RepositoryError) -> DAVError:
    """The DAV answer to a domain error (auditing denials as the REST API does)."""
    audit_denial(exc)
    status = HTTP_LOCKED if isinstance(exc, errors.DocumentLockedError) else status_for(exc)
    if status >= 500:
        log.error("integrity failure in WebDAV: %s", exc.detail)
    return DAVError(status, exc.detail)


@contextlib.contextmanager
def service(*, readonly: bool = False) -> Iterator[Session]:
    """A repository transaction whose domain and database errors come out as DAV errors."""
    try:
        with transaction(readonly=readonly) as session:
            yield session
    except errors.RepositoryError as exc:
        raise dav_error(exc) from exc
    except SQLIntegrityError as exc:
        log.info("WebDAV change conflicts with existing data: %s", exc.orig)
        raise DAVError(HTTP_CONFLICT, "the change conflicts with existing data; fetch the current state") from exc
    except SQLDataError as exc:
        raise DAVError(HTTP_UNPROCESSABLE_ENTITY, "a value in the request cannot be stored") from exc
    except OperationalError as exc:
        log.warning("database unavailable in WebDAV: %s", exc.orig)
        raise DAVError(HTTP_SERVICE_UNAVAILABLE, "the database is busy or unavailable; retry shortly") from exc


def forbidden(what: str) -> DAVError:
    """403 for an operation this part of the tree does not offer."""
    return DAVError(HTTP_FORBIDDEN, what)


def not_found(what: str) -> DAVError:
    """404."""
    return DAVError(HTTP_NOT_FOUND, what)


class MovedInOneTransaction:
    """MOVE and DELETE for the writable tree (/dav/files/), each one repository transaction: replacing what stands at
    a MOVE's destination, the change itself, and releasing the locks on the source (which may check a working copy
    in). A refused check-in so leaves nothing moved, replaced or deleted. Mixed into resources that implement
    `check_movable()`, `move_in()` and `remove_in()`."""

    def check_movable(self) -> None:
        """Raise unless this resource can be moved or deleted at all."""
        raise forbidden("this resource cannot be moved or deleted")

    def move_in(self, session: Session, user: User, parent_id: str, name: str) -> None:
        """Move (or rename) this resource into folder `parent_id` as `name`, in the caller's transaction."""
        raise NotImplementedError

    def remove_in(self, session: Session, user: User) -> None:
        """Delete this resource (documents go to the trash), in the caller's transaction."""
        raise NotImplementedError

    def handle_move(self, dest_path):  # noqa: ANN001, ANN201
        # Called by wsgidav before it would delete the destination in a transaction of its own. A destination that
        # exists is replaced here, together with the move (204 No Content); a new name goes on to move_recursive
        # (201 Created).
        self.check_movable()
        target = self.provider.get_resource_inst(dest_path, self.environ)  # type: ignore[attr-defined]
        if target is None:
            return False
        self._move(dest_path, replacing=target)
        return True

    def support_recursive_move(self, dest_path):  # noqa: ANN001, ANN201
        return True

    def move_recursive(self, dest_path):  # noqa: ANN001, ANN201
        self.check_movable()
        self._move(dest_path, replacing=None)
        return []

    def _move(self, dest_path: str, *, replacing) -> None:  # noqa: ANN001
        parent_id, name = self.provider.folder_and_name(dest_path, self.environ)  # type: ignore[attr-defined]
        user = actor(self.environ)  # type: ignore[attr-defined]
        with service() as session:
            if replacing is not None:
                replacing.check_movable()
                replacing.remove_in(session, user)
                release_at(session, replacing.get_ref_url(), recursive=replacing.is_collection)
            self.move_in(session, user, parent_id, name)
            release_at(session, self.get_ref_url(), recursive=self.is_collection)  # type: ignore[attr-defined]

    def delete(self):  # noqa: ANN201
        self.check_movable()
        with service() as session:
            self.remove_in(session, actor(self.environ))  # type: ignore[attr-defined]
            release_at(session, self.get_ref_url(), recursive=self.is_collection)  # type: ignore[attr-defined]
        return []


class DeadProperties:
    """Dead properties (PROPPATCH) kept per repository object, so they survive restarts, moves and renames.
    Mixed into resources that set `prop_key` and implement `check_prop_write()`."""

    prop_key: str | None = None

    def check_prop_write(self) -> None:
        """Raise unless the caller may change this resource's properties."""
        raise forbidden("properties of this resource cannot be changed")

    def get_property_names(self, *, is_allprop):  # noqa: ANN001, ANN201
        names = super().get_property_names(is_allprop=is_allprop)  # type: ignore[misc]
        if self.prop_key:
            names.extend(_props.names(self.prop_key))
        return names

    def get_property_value(self, name):  # noqa: ANN001, ANN201
        if name.startswith("{DAV:}") or not self.prop_key:
            return super().get_property_value(name)  # type: ignore[misc]
        value = _props.get(self.prop_key, name)
        if value is None:
            raise not_found(f"no property {name}")
        return xml_tools.string_to_xml(value)

    def set_property_value(self, name, value, *, dry_run=False):  # noqa: ANN001, ANN201
        if name.startswith("{DAV:}") or not self.prop_key:
            return super().set_property_value(name, value, dry_run=dry_run)  # type: ignore[misc]
        self.check_prop_write()
        text = None if value is None else etree.tostring(value).decode("utf-8")
        _props.put(self.prop_key, name, text, dry_run=dry_run)
        return None

    def remove_all_properties(self, *, recursive):  # noqa: ANN001, ANN201
        if self.prop_key:
            _props.remove_all(self.prop_key)


class UploadWriter:
    """The file object wsgidav writes a PUT body to: content goes to a ContentStager (hashed, counted against the
    upload limit, encrypted on arrival); `close()` hands the staged content to `commit`."""

    def __init__(self, stager, commit: Callable, filename: str) -> None:  # noqa: ANN001
        self._stager = stager
        self._commit = commit
        self._filename = filename
        self.staged = None

    def write(self, chunk: bytes) -> None:
        try:
            self._stager.write(chunk)
        except errors.RepositoryError as exc:
            raise dav_error(exc) from exc

    def close(self) -> None:
        self.staged = self._stager.finish(self._filename)
        self._commit(self.staged)

    def discard(self) -> None:
        """Drop whatever was received or staged and not committed."""
        if self.staged is not None:
            self.staged.release()
        else:
            self._stager.discard()
