"""Tables of search: the index source (one row per indexed document: its extracted text and the fields
queries filter on) and the queue of documents waiting to be (re)indexed.

On SQLite the FTS5 table `search_fts` indexes `search_entries` (through the view `search_fts_source`, which adds
the filter tokens) as external content, kept in step by triggers that also append to `search_fts_changes`
(migrations 0010 and 0014); on PostgreSQL `search_pg` holds the tsvector. None is modelled here: they are backend
internals (tests/test_migrations_match_models.py skips them)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from repository.db import Base
from repository.types import JSONType, UTCDateTime, utcnow


class SearchEntry(Base):
    """A document as the index sees it; `id` is the FTS5 rowid."""

    __tablename__ = "search_entries"
    __table_args__ = (Index("ix_search_entries_type_created", "document_type_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), unique=True)
    revision: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(20))
    content_sha256: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(500))
    document_type_id: Mapped[str] = mapped_column(String(36))
    customer_id: Mapped[str | None] = mapped_column(String(36), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    year: Mapped[int] = mapped_column(Integer)
    restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    text_status: Mapped[str] = mapped_column(String(20))
    text_error: Mapped[str | None] = mapped_column(String(500))
    indexed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    body: Mapped[str] = mapped_column(Text, default="")  # last: filters never read past a long text


class SearchQueueItem(Base):
    """A document to (re)index; the indexer removes it once the index has the version it read."""

    __tablename__ = "search_queue"
    __table_args__ = (Index("ix_search_queue_due", "next_attempt_at"),)

    document_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    queued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
