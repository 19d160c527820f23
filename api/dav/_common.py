"""What every WebDAV resource shares: the caller, service transactions with errors mapped to DAV statuses, dead
properties, and streaming readers and writers over the repository's encrypted content."""

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


class PlainReader:
    """A file-like view of decrypted content for wsgidav's GET: read() in blocks, seek() once for a range.
    Only what is read is decrypted; nothing holds the whole content."""

    def __init__(self, open_from: Callable[[int], Iterator[bytes]]) -> None:
        self._open_from = open_from
        self._pos = 0
        self._stream: Iterator[bytes] | None = None
        self._buffer = bytearray()

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0:
            raise OSError("only absolute seeks are supported")
        self._pos, self._stream, self._buffer = offset, None, bytearray()
        return offset

    def read(self, size: int = -1) -> bytes:
        if self._stream is None:
            self._stream = self._open_from(self._pos)
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._stream, b"")
            if not chunk:
                break
            self._buffer += chunk
        take = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:take])
        del self._buffer[:take]
        self._pos += take
        return data

    def close(self) -> None:
        self._stream, self._buffer = None, bytearray()


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
