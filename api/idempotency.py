"""Idempotency-Key handling for create calls: the answer commits with the change and is replayed on retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.orm import Session

from repository import idempotency
from repository.db import transaction
from repository.models import User


def replay(user: User, key: str, request: tuple[Any, ...],
           headers: Callable[[dict], dict[str, str]] | None = None) -> JSONResponse | None:
    """The stored answer to this key and request, replayed; None when the key is new (409 if it was used for
    another request). Call it before slow work that a replay must not repeat."""
    with transaction(readonly=True) as session:
        found = idempotency.lookup(session, actor_id=user.id, key=key, request_hash=idempotency.fingerprint(*request))
    if found is None:
        return None
    extra = headers(found.response_body) if headers else {}
    return JSONResponse(found.response_body, status_code=found.status_code,
                        headers={"Idempotent-Replayed": "true", **extra})


def idempotent_create(
    user: User,
    key: str | None,
    request: tuple[Any, ...],
    make: Callable[[Session], dict],
    status_code: int = 201,
    headers: Callable[[dict], dict[str, str]] | None = None,
) -> JSONResponse:
    """Run `make` in a transaction, or replay the stored answer if this key already did the same request."""
    request_hash = idempotency.fingerprint(*request)
    if key is not None and (answer := replay(user, key, request, headers)) is not None:
        return answer
    try:
        with transaction() as session:
            body = make(session)
            if key is not None:
                idempotency.save(session, actor_id=user.id, key=key, request_hash=request_hash,
                                 status_code=status_code, body=body)
    except SQLIntegrityError:
        # A concurrent request with the same key committed first: answer as it did.
        if key is not None and (answer := replay(user, key, request, headers)) is not None:
            return answer
        raise
    return JSONResponse(body, status_code=status_code, headers=headers(body) if headers else None)
