"""Tables of e-discovery: matters, saved searches, holds placed from them, production exports with their
documents, and each matter's chain of custody (hash-chained events)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from repository.db import Base
from repository.types import JSONType, UTCDateTime, new_id, utcnow

GENESIS = "0" * 64


class Matter(Base):
    """A legal matter: who and what it is about, its Bates numbering, and the head of its chain of custody."""

    __tablename__ = "matters"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    custodians: Mapped[list[str]] = mapped_column(JSONType, default=list)  # staff usernames
    customers: Mapped[list[str]] = mapped_column(JSONType, default=list)  # customer ids
    date_from: Mapped[dt.date | None] = mapped_column(Date)
    date_to: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="open")
    bates_prefix: Mapped[str] = mapped_column(String(20))
    next_bates: Mapped[int] = mapped_column(BigInteger, default=1)
    next_volume: Mapped[int] = mapped_column(Integer, default=1)
    # The newest custody event; appending locks this row, and verification compares the chain's end with it.
    custody_seq: Mapped[int] = mapped_column(Integer, default=0)
    custody_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)
    created_by: Mapped[str] = mapped_column(String(150))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_by: Mapped[str | None] = mapped_column(String(150))
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class MatterSearch(Base):
    """A saved search: query text and filters exactly as search.service.search takes them."""

    __tablename__ = "matter_searches"
    __table_args__ = (UniqueConstraint("matter_id", "name", name="uq_matter_searches_matter_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    matter_id: Mapped[str] = mapped_column(ForeignKey("matters.id"))
    name: Mapped[str] = mapped_column(String(200))
    q: Mapped[str | None] = mapped_column(Text)
    document_type: Mapped[str | None] = mapped_column(String(100))
    customer_id: Mapped[str | None] = mapped_column(String(36))
    created_from: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_to: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    meta: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    created_by: Mapped[str] = mapped_column(String(150))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MatterHold(Base):
    """A legal hold placed on what a saved search matched in the database at the time."""

    __tablename__ = "matter_holds"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    matter_id: Mapped[str] = mapped_column(ForeignKey("matters.id"), index=True)
    hold_id: Mapped[str] = mapped_column(ForeignKey("records_holds.id"))
    search_id: Mapped[str] = mapped_column(ForeignKey("matter_searches.id"))
    documents: Mapped[int] = mapped_column(Integer)
    versions: Mapped[int] = mapped_column(Integer)
    placed_by: Mapped[str] = mapped_column(String(150))
    placed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MatterExport(Base):
    """A production: queued → running → completed (→ expired) | failed; the ZIP is <data dir>/exports/<id>.zip,
    encrypted."""

    __tablename__ = "matter_exports"
    __table_args__ = (Index("ix_matter_exports_state", "state", "requested_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    matter_id: Mapped[str] = mapped_column(ForeignKey("matters.id"), index=True)
    state: Mapped[str] = mapped_column(String(20), default="queued")
    volume: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(20))  # "search" or "documents"
    search_id: Mapped[str | None] = mapped_column(ForeignKey("matter_searches.id"))
    requested_by: Mapped[str] = mapped_column(String(150))
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    document_count: Mapped[int] = mapped_column(Integer)
    excluded_unreadable: Mapped[int] = mapped_column(Integer, default=0)
    bates_begin: Mapped[int | None] = mapped_column(BigInteger)
    bates_end: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    package_sha256: Mapped[str | None] = mapped_column(String(64))
    zip_sha256: Mapped[str | None] = mapped_column(String(64))
    zip_size: Mapped[int | None] = mapped_column(BigInteger)  # of the ZIP itself; the file on disk is encrypted
    expired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # the package deleted, its key shredded
    kek_id: Mapped[str | None] = mapped_column(String(64))  # the package's data key, wrapped by the key ring
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)


class MatterExportItem(Base):
    """One document of an export, in production order, with the exact version exported and its Bates range."""

    __tablename__ = "matter_export_items"

    export_id: Mapped[str] = mapped_column(ForeignKey("matter_exports.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"))
    version_id: Mapped[str] = mapped_column(ForeignKey("document_versions.id"))
    bates_begin: Mapped[int | None] = mapped_column(BigInteger)
    pages: Mapped[int | None] = mapped_column(Integer)


class MatterEvent(Base):
    """One event of a matter's chain of custody; `hash` covers the row and the previous event's hash."""

    __tablename__ = "matter_events"

    matter_id: Mapped[str] = mapped_column(ForeignKey("matters.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(150))
    action: Mapped[str] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
