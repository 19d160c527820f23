"""The timeline table: one entry per customer event, newest first by (at, id).

Each entry comes from one outbox event (`source_event_id`, unique), so an event delivered twice, or replayed by
the backfill, makes one entry. `document_id` names the document the entry is about (the document itself, the
letter's archived PDF, the letter a delivery event belongs to); the history reads it to leave out what the
caller may not read. `terms` holds the words an entry without indexed text is matched on (" sent email smtp "),
space-delimited with a space at each end so a word is matched whole with LIKE."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from repository.db import Base
from repository.types import JSONType, UTCDateTime

KINDS = ("document", "letter", "delivery", "complaint")


class TimelineEntry(Base):
    """Something that happened to a customer, as the help desk sees it."""

    __tablename__ = "search_timeline"
    __table_args__ = (Index("ix_search_timeline_customer_at", "customer_id", "at", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    source_event_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    customer_id: Mapped[str] = mapped_column(String(36))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(20))
    subject_type: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[str] = mapped_column(String(36))
    document_id: Mapped[str | None] = mapped_column(String(36), index=True)
    title: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(String(1000), default="")
    channel: Mapped[str | None] = mapped_column(String(20))
    state: Mapped[str | None] = mapped_column(String(30))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    terms: Mapped[str] = mapped_column(Text, default=" ")
