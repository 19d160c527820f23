"""Document types."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from api.deps import CurrentUser
from api.idempotency import idempotent_create
from repository import service
from repository.db import transaction
from repository.models import DocumentType
from repository.schemas import DocumentTypeIn, DocumentTypeOut

router = APIRouter(prefix="/api/v1/document-types", tags=["document types"])


def type_out(t: DocumentType) -> DocumentTypeOut:
    """The API shape of a document type."""
    return DocumentTypeOut(id=t.id, name=t.name, description=t.description,
                           allowed_media_types=t.allowed_media_types, read_roles=t.read_roles,
                           write_roles=t.write_roles)


@router.get("", response_model=list[DocumentTypeOut])
def list_types(user: CurrentUser) -> list[DocumentTypeOut]:
    """Every document type."""
    with transaction(readonly=True) as session:
        return [type_out(t) for t in service.list_types(session)]


@router.post("", status_code=201, response_model=DocumentTypeOut)
def create_type(body: DocumentTypeIn, user: CurrentUser,
                idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Create a document type (admins)."""

    def make(session) -> dict:  # noqa: ANN001
        t = service.create_type(session, actor=user, name=body.name, description=body.description,
                                allowed_media_types=body.allowed_media_types, read_roles=body.read_roles,
                                write_roles=body.write_roles)
        return type_out(t).model_dump(mode="json")

    return idempotent_create(user, idempotency_key, ("POST", "/document-types", body.model_dump()), make)
