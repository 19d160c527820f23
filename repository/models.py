"""Tables of the repository core."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from repository.db import Base
from repository.types import JSONType, UTCDateTime, new_id, utcnow


class User(Base):
    """A staff user who signs in to the API and UI."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[str]] = mapped_column(JSONType, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DocumentType(Base):
    """A kind of document: which media types it accepts and which roles may read and write it."""

    __tablename__ = "document_types"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    allowed_media_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    read_roles: Mapped[list[str]] = mapped_column(JSONType, default=list)
    write_roles: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Customer(Base):
    """A customer that documents and letters belong to: postal address, contact details, preferences."""

    __tablename__ = "customers"
    __table_args__ = (Index("ix_customers_name_id", "name", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    external_ref: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    salutation: Mapped[str] = mapped_column(String(300), default="")
    title: Mapped[str] = mapped_column(String(50), default="")
    address_lines: Mapped[list[str]] = mapped_column(JSONType, default=list)
    city: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    postcode: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str | None] = mapped_column(String(2))
    email: Mapped[str | None] = mapped_column(String(320))
    mobile: Mapped[str | None] = mapped_column(String(20))
    locale: Mapped[str] = mapped_column(String(35), default="en-GB")
    channel_preferences: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    paperless: Mapped[bool] = mapped_column(Boolean, default=False)
    segment: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    address_undeliverable: Mapped[bool] = mapped_column(Boolean, default=False)
    undeliverable_reason: Mapped[str | None] = mapped_column(String(500))
    undeliverable_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CustomerConsent(Base):
    """One consent decision; append-only, the newest row per purpose is the customer's current answer."""

    __tablename__ = "customer_consents"
    __table_args__ = (Index("ix_customer_consents_current", "customer_id", "purpose", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    purpose: Mapped[str] = mapped_column(String(100))
    granted: Mapped[bool] = mapped_column(Boolean)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(100))
    recorded_by: Mapped[str] = mapped_column(String(150))


class Document(Base):
    """A versioned document; its current version and check-out lock live on this row."""

    __tablename__ = "documents"
    __table_args__ = (
        Index("ix_documents_type_created", "document_type_id", "created_at", "id"),
        # A name appears once among a folder's active documents (a document's name in a folder is its title).
        Index("uq_documents_folder_title", "folder_id", "title", unique=True,
              sqlite_where=text("state = 'active' AND folder_id IS NOT NULL"),
              postgresql_where=text("state = 'active' AND folder_id IS NOT NULL")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(500))
    document_type_id: Mapped[str] = mapped_column(ForeignKey("document_types.id"))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), index=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    state: Mapped[str] = mapped_column(String(20), default="active")
    current_major: Mapped[int] = mapped_column(Integer, default=1)
    current_minor: Mapped[int] = mapped_column(Integer, default=0)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    checked_out_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    checked_out_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lock_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    trashed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    trashed_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    folder_id: Mapped[str | None] = mapped_column(ForeignKey("folders.id"), index=True)
    # The lock holder's private working copy (saved, not yet checked in), encrypted under the document's key.
    working_blob_key: Mapped[str | None] = mapped_column(String(200), index=True)
    working_sha256: Mapped[str | None] = mapped_column(String(64))
    working_size: Mapped[int | None] = mapped_column(BigInteger)
    working_media_type: Mapped[str | None] = mapped_column(String(200))
    working_filename: Mapped[str | None] = mapped_column(String(500))
    working_saved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Restricted (an erasure request kept it for its retention): only records managers may see it.
    restricted: Mapped[bool] = mapped_column(Boolean, default=False)

    @property
    def version_label(self) -> str:
        """The current version as "major.minor"."""
        return f"{self.current_major}.{self.current_minor}"


ROOT_FOLDER_ID = "00000000-0000-0000-0000-000000000000"


class Folder(Base):
    """A folder of the file tree that WebDAV shows under /dav/files/; the root row is created by migration 0003."""

    __tablename__ = "folders"
    __table_args__ = (UniqueConstraint("parent_id", "name", name="uq_folders_parent_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("folders.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DavLock(Base):
    """A WebDAV lock; a lock on a document goes with that document's check-out (see api/dav/_locks.py)."""

    __tablename__ = "dav_locks"

    token: Mapped[str] = mapped_column(String(100), primary_key=True)
    root: Mapped[str] = mapped_column(String(2000), index=True)
    principal: Mapped[str] = mapped_column(String(150))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    scope: Mapped[str] = mapped_column(String(20))
    depth: Mapped[str] = mapped_column(String(20))
    owner: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    timeout: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    document_id: Mapped[str | None] = mapped_column(ForeignKey("documents.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DavProperty(Base):
    """A WebDAV dead property (PROPPATCH) of a document or folder, kept across restarts."""

    __tablename__ = "dav_properties"

    resource: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(1000), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class DocumentVersion(Base):
    """One immutable version of a document's content."""

    __tablename__ = "document_versions"
    __table_args__ = (UniqueConstraint("document_id", "major", "minor", name="uq_document_versions_label"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), index=True)
    major: Mapped[int] = mapped_column(Integer)
    minor: Mapped[int] = mapped_column(Integer)
    blob_key: Mapped[str] = mapped_column(String(200), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    comment: Mapped[str] = mapped_column(Text, default="")
    # Declared so the unit of work inserts the document before its versions in one flush; never loaded.
    document: Mapped[Document] = relationship(lazy="raise")

    @property
    def label(self) -> str:
        """The version as "major.minor"."""
        return f"{self.major}.{self.minor}"


class DataKey(Base):
    """A document's data encryption key, wrapped by a key-encryption key from the key ring."""

    __tablename__ = "data_keys"

    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), primary_key=True)
    kek_id: Mapped[str] = mapped_column(String(64))
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    destroyed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    document: Mapped[Document] = relationship(lazy="raise")  # orders the insert after the document's


class AuditEntry(Base):
    """One row of the append-only, hash-chained audit trail."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(150), index=True)
    action: Mapped[str] = mapped_column(String(100))
    object_type: Mapped[str] = mapped_column(String(50))
    object_id: Mapped[str | None] = mapped_column(String(100), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The single row naming the newest audit entry; locking it serialises appends to the chain."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class OutboxEvent(Base):
    """An event written in the business transaction, delivered to subscribers by a worker."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "delivered_at", "available_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    available_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class OutboxDelivery(Base):
    """Marks that one subscriber has handled one event, so a retry skips it."""

    __tablename__ = "outbox_deliveries"

    event_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), primary_key=True)
    subscriber: Mapped[str] = mapped_column(String(200), primary_key=True)
    delivered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyRecord(Base):
    """The first answer to a create call made with an Idempotency-Key, replayed on retries."""

    __tablename__ = "idempotency_keys"

    actor_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
