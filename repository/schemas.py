"""Pydantic shapes of repository objects as the API shows them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field


class CustomerIn(BaseModel):
    """A customer to register."""

    external_ref: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=300)


class CustomerOut(BaseModel):
    """A registered customer."""

    id: str
    external_ref: str
    name: str
    created_at: dt.datetime


class DocumentTypeIn(BaseModel):
    """A document type to create."""

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    allowed_media_types: list[str] = Field(default_factory=list)
    read_roles: list[str]
    write_roles: list[str]


class DocumentTypeOut(DocumentTypeIn):
    """A document type."""

    id: str


class DocumentOut(BaseModel):
    """A document's metadata and current state."""

    id: str
    title: str
    document_type: str
    customer_id: str | None
    metadata: dict[str, Any]
    version: str
    state: str
    checked_out_by: str | None
    lock_expires_at: dt.datetime | None
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    revision: int


class DocumentCreated(BaseModel):
    """The answer to an upload."""

    id: str
    version: str
    sha256: str
    size: int
    media_type: str


class DocumentPatch(BaseModel):
    """A change to title and/or metadata."""

    title: str | None = None
    metadata: dict[str, Any] | None = None


class VersionOut(BaseModel):
    """One version of a document."""

    version: str
    sha256: str
    size: int
    media_type: str
    filename: str
    created_by: str
    created_at: dt.datetime
    comment: str


class CheckoutOut(BaseModel):
    """The state of a check-out."""

    document_id: str
    checked_out_by: str
    expires_at: dt.datetime


class AuditEntryOut(BaseModel):
    """One row of the audit trail."""

    seq: int
    at: dt.datetime
    actor: str
    action: str
    object_type: str
    object_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class Token(BaseModel):
    """An OAuth2 bearer token."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 (the OAuth2 token type, not a secret)
    expires_in: int
