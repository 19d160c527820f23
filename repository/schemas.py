"""Pydantic shapes of repository objects as the API shows them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Address(BaseModel):
    """A postal address; the service checks completeness and the postcode format of the country."""

    model_config = ConfigDict(extra="forbid")

    lines: list[str] = Field(default_factory=list, description="1-4 lines: house, street, locality")
    city: str | None = None
    region: str | None = None
    postcode: str | None = None
    country: str | None = Field(None, description="ISO 3166-1 alpha-2, like GB")


class CustomerIn(BaseModel):
    """A customer to register; only external_ref and name are required."""

    model_config = ConfigDict(extra="forbid")

    external_ref: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=300)
    salutation: str | None = Field(None, description='how letters greet the customer, like "Dear Ms Smith"')
    title: str | None = Field(None, description="Ms, Dr, ...")
    address: Address | None = None
    email: str | None = None
    mobile: str | None = Field(None, description="E.164, or national form of the address country")
    locale: str | None = Field(None, description="BCP 47 language tag; en-GB when not given")
    channel_preferences: dict[str, str] | None = Field(
        None, description='communication category -> print, email, sms, portal or none, like {"statements": "email"}')
    paperless: bool = False
    segment: dict[str, Any] | None = Field(None, description="free attributes for targeting")


class CustomerPatch(BaseModel):
    """Changes to a customer: only the fields sent change; null clears an optional field; address is replaced
    whole."""

    model_config = ConfigDict(extra="forbid")

    external_ref: str | None = Field(None, min_length=1, max_length=200)
    name: str | None = Field(None, min_length=1, max_length=300)
    salutation: str | None = None
    title: str | None = None
    address: Address | None = None
    email: str | None = None
    mobile: str | None = None
    locale: str | None = None
    channel_preferences: dict[str, str] | None = None
    paperless: bool | None = None
    segment: dict[str, Any] | None = None


class ConsentIn(BaseModel):
    """A consent decision to record."""

    purpose: str = Field(min_length=1, max_length=100, description="like marketing-email")
    granted: bool
    source: str = Field(min_length=1, max_length=100, description="like web-form or call-centre")


class ConsentOut(BaseModel):
    """A recorded consent decision."""

    purpose: str
    granted: bool
    source: str
    recorded_at: dt.datetime
    recorded_by: str


class UndeliverableIn(BaseModel):
    """Why the customer's postal address is undeliverable."""

    reason: str = Field(min_length=1, max_length=500, description="like: returned by Royal Mail, addressee gone away")


class CustomerOut(BaseModel):
    """A registered customer with its current consents."""

    id: str
    external_ref: str
    name: str
    salutation: str
    title: str
    address: Address | None
    email: str | None
    mobile: str | None
    locale: str
    channel_preferences: dict[str, str]
    paperless: bool
    segment: dict[str, Any]
    address_undeliverable: bool
    undeliverable_reason: str | None
    undeliverable_at: dt.datetime | None
    consents: list[ConsentOut]
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class FieldProblem(BaseModel):
    """One bad field."""

    field: str
    message: str


class RejectedRow(BaseModel):
    """A row an import rejected."""

    line: int
    external_ref: str | None
    errors: list[FieldProblem]


class ImportReportOut(BaseModel):
    """What a customer import did."""

    imported: int
    updated: int
    unchanged: int
    rejected_count: int
    rejected: list[RejectedRow] = Field(description="the first 1000 rejected rows")
    rejected_truncated: bool


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
