"""One table from domain errors to HTTP statuses, and handlers that answer RFC 9457 problem details."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError as SQLDataError
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from repository import audit, errors
from repository.access import AccessDeniedError
from repository.db import transaction

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"

# Most specific first: the first matching class decides the status.
STATUS: list[tuple[type[errors.RepositoryError], int]] = [
    (AccessDeniedError, 404),
    (errors.NotFoundError, 404),
    (errors.UnknownDocumentTypeError, 422),
    (errors.InvalidInputError, 422),
    (errors.DuplicateError, 409),
    (errors.DocumentLockedError, 409),
    (errors.NotCheckedOutError, 409),
    (errors.DocumentStateError, 409),
    (errors.IdempotencyConflictError, 409),
    (errors.PreconditionFailedError, 412),
    (errors.ContentTooLargeError, 413),
    (errors.UnsupportedMediaTypeError, 415),
    (errors.UnsafeContentError, 422),
    (errors.AuthenticationError, 401),
    (errors.PermissionDeniedError, 403),
    (errors.IntegrityError, 500),
]


def register_error_mapping(extra: list[tuple[type[errors.RepositoryError], int]]) -> None:
    """Let another domain add its error classes (placed before the generic ones)."""
    STATUS[:0] = extra


def status_for(exc: errors.RepositoryError) -> int:
    """The HTTP status for a domain error."""
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def _slug(exc: Exception) -> str:
    name = type(exc).__name__.removesuffix("Error")
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")


def problem(status: int, title: str, detail: str, *, type_: str = "about:blank", instance: str | None = None,
            headers: dict[str, str] | None = None, **extra: object) -> JSONResponse:
    """A problem-details response."""
    body: dict[str, object] = {"type": type_, "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _audit_denial(exc: errors.RepositoryError) -> None:
    extra = exc.extra
    if "actor" not in extra:
        return
    try:
        with transaction() as session:
            audit.record(session, actor=str(extra["actor"]), action="access.denied",
                         object_type=str(extra.get("object_type")), object_id=extra.get("object_id"),
                         details={"attempted": extra.get("attempted")})
    except Exception:  # the answer to the caller matters more than this row
        log.exception("could not audit an access denial")


def audit_denial(exc: errors.RepositoryError) -> None:
    """Audit a denied read or change in its own transaction (for interfaces outside FastAPI, such as WebDAV)."""
    if isinstance(exc, (AccessDeniedError, errors.PermissionDeniedError)):
        _audit_denial(exc)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error as problem details, never with a stack trace."""

    @app.exception_handler(errors.RepositoryError)
    async def _domain(request: Request, exc: errors.RepositoryError) -> JSONResponse:
        status = status_for(exc)
        if isinstance(exc, (AccessDeniedError, errors.PermissionDeniedError)):
            from starlette.concurrency import run_in_threadpool

            await run_in_threadpool(_audit_denial, exc)
        if status >= 500:  # str(exc) may hold more than the detail shown (SearchBackendError's reason)
            log.error("%s on %s: %s", exc.title.lower(), request.url.path, exc)
        public = {k: v for k, v in exc.extra.items() if k not in ("actor", "object_type", "object_id", "attempted")}
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if exc.extra.get("retry_after") is not None:
            headers = {**(headers or {}), "Retry-After": str(exc.extra["retry_after"])}
        title = "Not found" if isinstance(exc, AccessDeniedError) else exc.title
        # A denied read must be indistinguishable from a missing object, down to the problem type.
        slug = "not-found" if isinstance(exc, AccessDeniedError) else _slug(exc)
        return problem(status, title, exc.detail, type_=f"urn:postroom:problem:{slug}",
                       instance=request.url.path, headers=headers, **public)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path", "header")),
             "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{i['field'] or 'request'}: {i['message']}" for i in issues)
        return problem(422, "Invalid request", detail, type_="urn:postroom:problem:invalid-request",
                       instance=request.url.path, errors=issues)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        return problem(exc.status_code, detail, detail, instance=request.url.path,
                       headers=getattr(exc, "headers", None))

    @app.exception_handler(SQLIntegrityError)
    async def _conflict(request: Request, exc: SQLIntegrityError) -> JSONResponse:
        log.info("constraint violation on %s: %s", request.url.path, exc.orig)
        return problem(409, "Conflict", "the change conflicts with existing data (it may have been made already); "
                       "fetch the current state and retry", instance=request.url.path)

    @app.exception_handler(SQLDataError)
    async def _unstorable(request: Request, exc: SQLDataError) -> JSONResponse:
        # PostgreSQL refuses some values SQLite takes (NUL characters in text, NaN in JSON): that is bad input.
        log.info("value refused by the database on %s: %s", request.url.path, exc.orig)
        return problem(422, "Invalid input", "a value in the request cannot be stored (text must not contain NUL "
                       "characters; JSON numbers must be finite); correct it and retry", instance=request.url.path)

    @app.exception_handler(OperationalError)
    async def _unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable on %s: %s", request.url.path, exc.orig)
        return problem(503, "Service unavailable", "the database is busy or unavailable; retry shortly",
                       instance=request.url.path, headers={"Retry-After": "2"})

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # Nobody is listening; whatever was received has been discarded.
        log.info("client disconnected during %s %s", request.method, request.url.path)
        return problem(400, "Client disconnected", "the request body ended early", instance=request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", "an unexpected error occurred; it has been logged",
                       instance=request.url.path)
