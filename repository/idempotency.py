"""Stored first answers to create calls made with an Idempotency-Key."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy.orm import Session

from repository.errors import IdempotencyConflictError, InvalidInputError
from repository.models import IdempotencyRecord


def fingerprint(*parts: Any) -> str:
    """A hash of what identifies a request (method, path, fields, content hash)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def check_key(key: str) -> str:
    """Idempotency keys are 1-255 printable characters."""
    if not key or len(key) > 255 or not key.isprintable():
        raise InvalidInputError("Idempotency-Key must be 1-255 printable characters")
    return key


def lookup(session: Session, *, actor_id: str, key: str, request_hash: str) -> IdempotencyRecord | None:
    """The stored answer for this key, None if new; IdempotencyConflictError if it was used for another request."""
    record = session.get(IdempotencyRecord, (actor_id, check_key(key)))
    if record is not None and record.request_hash != request_hash:
        raise IdempotencyConflictError(
            "this Idempotency-Key was already used for a different request; use a new key for a new request"
        )
    return record


def save(session: Session, *, actor_id: str, key: str, request_hash: str, status_code: int, body: dict) -> None:
    """Record the answer in the caller's transaction, so it commits with the change it describes."""
    session.add(IdempotencyRecord(actor_id=actor_id, key=key, request_hash=request_hash,
                                  status_code=status_code, response_body=body))
