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

    def _replay() -> JSONResponse | None:
        with transaction(readonly=True) as session:
            found = idempotency.lookup(session, actor_id=user.id, key=key, request_hash=request_hash)
        if found is None:
            return None
        extra = headers(found.response_body) if headers else {}
        return JSONResponse(found.response_body, status_code=found.status_code,
                            headers={"Idempotent-Replayed": "true", **extra})

    if key is not None:
        replay = _replay()
        if replay is not None:
            return replay
    try:
        with transaction() as session:
            body = make(session)
            if key is not None:
                idempotency.save(session, actor_id=user.id, key=key, request_hash=request_hash,
                                 status_code=status_code, body=body)
    except SQLIntegrityError:
        # A concurrent request with the same key committed first: answer as it did.
        if key is not None and (replay := _replay()) is not None:
            return replay
        raise
    return JSONResponse(body, status_code=status_code, headers=headers(body) if headers else None)
