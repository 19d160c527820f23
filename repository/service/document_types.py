"""Document types: which media types a type accepts and which roles may read and write it."""

from __future__ import annotations

import re

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from repository import audit, events
from repository.access import require_role
from repository.errors import DuplicateError, InvalidInputError, UnknownDocumentTypeError
from repository.identity import ROLES
from repository.models import DocumentType, User

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,99}$")
_MEDIA = re.compile(r"^[a-z0-9.+-]+/[a-z0-9.+*-]+$")
_BY_NAME = select(DocumentType).where(DocumentType.name == bindparam("name"))  # built once: a hot lookup


def get_type(session: Session, *, name: str) -> DocumentType:
    """The document type with this name; UnknownDocumentTypeError otherwise."""
    doc_type = session.execute(_BY_NAME, {"name": name}).scalar_one_or_none()
    if doc_type is None:
        raise UnknownDocumentTypeError(f"there is no document type {name!r}", name=name)
    return doc_type


def list_types(session: Session) -> list[DocumentType]:
    """Every document type by name."""
    return list(session.execute(select(DocumentType).order_by(DocumentType.name)).scalars())


def create_type(
    session: Session,
    *,
    actor: User,
    name: str,
    description: str = "",
    allowed_media_types: list[str],
    read_roles: list[str],
    write_roles: list[str],
) -> DocumentType:
    """Create a document type (admins only)."""
    require_role(actor, "admin")
    if not _NAME.match(name):
        raise InvalidInputError("name must be lower-case letters, digits and '-', starting with a letter")
    bad = [m for m in allowed_media_types if not _MEDIA.match(m)]
    if bad:
        raise InvalidInputError(f"not media types: {', '.join(bad)} (write e.g. application/pdf or image/*)")
    unknown = sorted((set(read_roles) | set(write_roles)) - set(ROLES))
    if unknown:
        raise InvalidInputError(f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(ROLES)}")
    if session.execute(select(DocumentType.id).where(DocumentType.name == name)).first():
        raise DuplicateError(f"document type {name!r} already exists")
    doc_type = DocumentType(
        name=name,
        description=description,
        allowed_media_types=sorted(set(allowed_media_types)),
        read_roles=sorted(set(read_roles)),
        write_roles=sorted(set(write_roles)),
    )
    session.add(doc_type)
    session.flush()
    audit.record(session, actor=actor.username, action="document_type.created", object_type="document_type",
                 object_id=doc_type.id, details={"name": name})
    events.emit(session, events.DOCUMENT_TYPE_CREATED, {"document_type_id": doc_type.id, "name": name})
    return doc_type


def media_type_allowed(doc_type: DocumentType, media_type: str) -> bool:
    """True when the type's allow-list is empty or names the media type (or its `major/*`)."""
    allowed = doc_type.allowed_media_types
    return not allowed or media_type in allowed or f"{media_type.split('/')[0]}/*" in allowed
