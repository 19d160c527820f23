"""Tables of output: letters (each archived as a repository document), the dispatch ledger (one row per letter
and channel) and the delivery events that land on the customer's timeline."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from repository.db import Base
from repository.types import UTCDateTime, new_id, utcnow

# Letter states.
COMPOSED, DISPATCHING, DONE, FAILED = "composed", "dispatching", "done", "failed"
# Ledger states; `sending` is the lease taken (and committed) before a channel is called.
QUEUED, SENDING, SENT, DELIVERED = "queued", "sending", "sent", "delivered"
BOUNCED, SUPPRESSED = "bounced", "suppressed"
FINAL_STATES = (DELIVERED, FAILED, BOUNCED, SUPPRESSED)
# Delivery event kinds.
OPENED, CLICKED = "opened", "clicked"


class Letter(Base):
    """One composed letter to one customer: what produced it, where its archived PDF is, and its overall state."""

    __tablename__ = "letters"
    __table_args__ = (Index("ix_letters_customer_created", "customer_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    reference: Mapped[str] = mapped_column(String(40), unique=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", name="fk_letters_customer"))
    template_id: Mapped[str] = mapped_column(ForeignKey("correspondence_templates.id", name="fk_letters_template"))
    template_name: Mapped[str] = mapped_column(String(100))
    template_version: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(50))
    data_sha256: Mapped[str] = mapped_column(String(64))
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", name="fk_letters_document"), unique=True)
    pages: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default=COMPOSED)
    batch_id: Mapped[str | None] = mapped_column(String(36), index=True)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id", name="fk_letters_created_by"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Dispatch(Base):
    """The ledger row of one letter on one channel; its idempotency key travels with every send attempt."""

    __tablename__ = "dispatches"
    __table_args__ = (
        UniqueConstraint("letter_id", "channel", name="uq_dispatches_letter_channel"),
        Index("ix_dispatches_due", "state", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    letter_id: Mapped[str] = mapped_column(ForeignKey("letters.id", name="fk_dispatches_letter"))
    channel: Mapped[str] = mapped_column(String(20))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(20), default=QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    provider_ref: Mapped[str | None] = mapped_column(String(500))
    reason: Mapped[str | None] = mapped_column(String(500))  # why it was suppressed, or why it is a fallback
    last_error: Mapped[str | None] = mapped_column(Text)
    fallback_of: Mapped[str | None] = mapped_column(ForeignKey("dispatches.id", name="fk_dispatches_fallback_of"))
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeliveryEvent(Base):
    """Something that happened to a letter on a channel (queued, sent, delivered, opened...), for the timeline."""

    __tablename__ = "delivery_events"
    __table_args__ = (Index("ix_delivery_events_customer_at", "customer_id", "at"),
                      Index("ix_delivery_events_letter", "letter_id", "id"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    dispatch_id: Mapped[str] = mapped_column(ForeignKey("dispatches.id", name="fk_delivery_events_dispatch"))
    letter_id: Mapped[str] = mapped_column(ForeignKey("letters.id", name="fk_delivery_events_letter"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", name="fk_delivery_events_customer"))
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    detail: Mapped[str] = mapped_column(Text, default="")
