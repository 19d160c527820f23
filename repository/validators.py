"""Content checks that other packages register per document type (a template must parse before it is stored).

The repository cannot import the packages that know a format; they register a validator at start-up and the
repository runs it on every new version of a document of that type, before anything is committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Candidate:
    """New content offered for a document: what it is and how to read it (a fresh seekable file each call)."""

    document_type: str
    document_id: str | None
    media_type: str
    filename: str
    size: int
    open: Callable[[], BinaryIO]


Validator = Callable[[Session, Candidate], None]
_validators: dict[str, dict[str, Validator]] = {}


def register(document_type: str, name: str, validator: Validator) -> None:
    """Run `validator` on every new version of documents of this type; it raises a repository error to refuse."""
    _validators.setdefault(document_type, {})[name] = validator


def unregister(document_type: str, name: str) -> None:
    """Forget one validator (tests)."""
    _validators.get(document_type, {}).pop(name, None)


def validate(session: Session, candidate: Candidate) -> None:
    """Run every validator registered for the candidate's document type."""
    for validator in list(_validators.get(candidate.document_type, {}).values()):
        validator(session, candidate)
