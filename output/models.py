"""Tables of output: letters (each archived as a repository document), the dispatch ledger (one row per letter
and channel) and the delivery events that land on the customer's timeline."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from repository.db import Base
from repository.types import JSONType, UTCDateTime, new_id, utcnow

# Letter states.
COMPOSED, DISPATCHING, DONE, FAILED = "composed", "dispatching", "done", "failed"
# Ledger states; `sending` is the lease taken (and committed) before a channel is called.
QUEUED, SENDING, SENT, DELIVERED = "queued", "sending", "sent", "delivered"
HANDOVER = "handover:"  # provider_ref prefix while an email is handed to the relay (output/service/dispatch.py)
BOUNCED, SUPPRESSED = "bounced", "suppressed"
FINAL_STATES = (DELIVERED, FAILED, BOUNCED, SUPPRESSED)
# Batch states; a batch row is pending, done (it has its letter) or failed (with its error).
BATCH_QUEUED, BATCH_RUNNING, BATCH_COMPLETED, BATCH_FAILED, BATCH_CANCELLED = (
    "queued", "running", "completed", "failed", "cancelled")
ROW_PENDING, ROW_DONE, ROW_FAILED = "pending", "done", "failed"
# Delivery event kinds.
OPENED, CLICKED = "opened", "clicked"


class Letter(Base):
    """One composed letter to one customer: what produced it, where its archived PDF is, and its overall state."""

    __tablename__ = "letters"
    __table_args__ = (Index("ix_letters_customer_created", "customer_id", "created_at"),
                      Index("uq_letters_batch_row", "batch_id", "batch_row", unique=True))

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
    batch_row: Mapped[int | None] = mapped_column(Integer)  # with batch_id: unique, so a row makes one letter
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


class LetterBatch(Base):
    """A batch of letters from one template version: its rows, progress and the runner's lease."""

    __tablename__ = "letter_batches"
    __table_args__ = (Index("ix_letter_batches_status", "status", "lease_until"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    template_id: Mapped[str] = mapped_column(ForeignKey("correspondence_templates.id",
                                                        name="fk_letter_batches_template"))
    template_name: Mapped[str] = mapped_column(String(100))
    template_version: Mapped[str] = mapped_column(String(20))  # pinned when the batch is created
    versions: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)  # every locale variant: id -> label
    category: Mapped[str | None] = mapped_column(String(50))
    channel: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=BATCH_QUEUED)
    source_name: Mapped[str] = mapped_column(String(255), default="")
    source_sha256: Mapped[str] = mapped_column(String(64), default="")
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    rows_failed: Mapped[int] = mapped_column(Integer, default=0)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    runs: Mapped[int] = mapped_column(Integer, default=0)  # how many times a runner took it (resumes after crashes)
    failed_runs: Mapped[int] = mapped_column(Integer, default=0)  # runs in a row that ended in an error
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id", name="fk_letter_batches_created_by"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LetterBatchRow(Base):
    """One input row of a batch: whom it is for, its data, and the letter it made or why it failed."""

    __tablename__ = "letter_batch_rows"
    __table_args__ = (Index("ix_letter_batch_rows_state", "batch_id", "state", "row_no"),)

    batch_id: Mapped[str] = mapped_column(ForeignKey("letter_batches.id", name="fk_letter_batch_rows_batch"),
                                          primary_key=True)
    row_no: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1-based, as in the input file
    customer_ref: Mapped[str | None] = mapped_column(String(200))  # the customer's external reference, or
    customer_id: Mapped[str | None] = mapped_column(String(36))  # their id, as the input row gave it
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    state: Mapped[str] = mapped_column(String(20), default=ROW_PENDING)
    letter_id: Mapped[str | None] = mapped_column(String(36))
    error: Mapped[str | None] = mapped_column(Text)


# Print house (service/print_house/): a run's states, and a mailpiece's.
RUN_AWAITING_RESULTS, RUN_COMPLETED = "awaiting_results", "completed"
PIECE_PRINTED, PIECE_DELIVERED, PIECE_DAMAGED = "printed", "delivered", "damaged"


class PrintRun(Base):
    """One print file for the print house: its merged PDF and CSV manifest (repository documents) and counts."""

    __tablename__ = "print_runs"
    __table_args__ = (Index("ix_print_runs_created", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    status: Mapped[str] = mapped_column(String(20), default=RUN_AWAITING_RESULTS)
    scheduled_on: Mapped[dt.date | None] = mapped_column(Date, unique=True)  # the day of a scheduled run: one a day
    duplex: Mapped[bool] = mapped_column(Boolean)
    pieces: Mapped[int] = mapped_column(Integer)
    pages: Mapped[int] = mapped_column(Integer)  # pages in the file, blank backs included
    sheets: Mapped[int] = mapped_column(Integer)
    delivered: Mapped[int] = mapped_column(Integer, default=0)
    damaged: Mapped[int] = mapped_column(Integer, default=0)
    file_document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", name="fk_print_runs_file"))
    manifest_document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", name="fk_print_runs_manifest"))
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id", name="fk_print_runs_created_by"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PrintPiece(Base):
    """One mailpiece of a run: a letter's print ledger row, where it lies in the file, and the inserter's result."""

    __tablename__ = "print_pieces"
    __table_args__ = (
        UniqueConstraint("run_id", "seq", name="uq_print_pieces_run_seq"),
        UniqueConstraint("run_id", "dispatch_id", name="uq_print_pieces_run_dispatch"),  # once per run
        Index("ix_print_pieces_dispatch", "dispatch_id"),
        Index("ix_print_pieces_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("print_runs.id", name="fk_print_pieces_run"))
    seq: Mapped[int] = mapped_column(Integer)  # 1..n in presort order
    dispatch_id: Mapped[str] = mapped_column(ForeignKey("dispatches.id", name="fk_print_pieces_dispatch"))
    letter_id: Mapped[str] = mapped_column(ForeignKey("letters.id", name="fk_print_pieces_letter"))
    status: Mapped[str] = mapped_column(String(20), default=PIECE_PRINTED)
    pages: Mapped[int] = mapped_column(Integer)
    sheets: Mapped[int] = mapped_column(Integer)
    first_page: Mapped[int] = mapped_column(Integer)  # 1-based, in the run's file
    # A damaged piece is printed again once: unique, so two runs can never both take it.
    reprint_of: Mapped[str | None] = mapped_column(ForeignKey("print_pieces.id", name="fk_print_pieces_reprint_of"),
                                                   unique=True)
    note: Mapped[str | None] = mapped_column(Text)
    result_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MessageTemplate(Base):
    """The email (subject, text, HTML) or SMS text that goes with letters of one category, or of any category
    without its own (`category` ""), for customers of one locale or of any (`locale` ""); Jinja in the sandbox."""

    __tablename__ = "message_templates"
    __table_args__ = (UniqueConstraint("channel", "category", "locale", name="uq_message_templates_scope"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    channel: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(50), default="")
    locale: Mapped[str] = mapped_column(String(35), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id", name="fk_message_templates_created_by"))
    updated_by: Mapped[str] = mapped_column(ForeignKey("users.id", name="fk_message_templates_updated_by"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
