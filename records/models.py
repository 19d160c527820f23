"""Tables of records management: the file plan, each document's retention state, business events, legal holds,
disposition batches, tombstones and erasure requests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from repository.db import Base
from repository.types import JSONType, UTCDateTime, new_id, utcnow

# Retention triggers: when a document's clock starts.
CREATED, DECLARED, LETTER_SENT, EVENT = "created", "declared", "letter_sent", "event"
TRIGGERS = (CREATED, DECLARED, LETTER_SENT, EVENT)
PERIOD_UNITS = ("days", "months", "years")
CUTOFFS = ("calendar_year", "fiscal_year")
DESTROY, REVIEW, TRANSFER = "destroy", "review", "transfer"
ACTIONS = (DESTROY, REVIEW, TRANSFER)


class RetentionClass(Base):
    """A class of the file plan and its one retention rule ("the class determines the destiny")."""

    __tablename__ = "records_classes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(50), unique=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("records_classes.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    trigger: Mapped[str] = mapped_column(String(20))
    event_type: Mapped[str | None] = mapped_column(String(100))  # the business event, when trigger is "event"
    period_value: Mapped[int] = mapped_column(Integer)
    period_unit: Mapped[str] = mapped_column(String(10))
    cutoff: Mapped[str | None] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(20))
    auto_declare: Mapped[bool] = mapped_column(Boolean, default=False)
    # Why the law requires keeping these (e.g. "FCA SYSC 9.1"); a kept document's reason in an erasure report.
    legal_basis: Mapped[str | None] = mapped_column(String(500))
    rule_revision: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(150))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class TypeClass(Base):
    """The file-plan class a document type's new documents are filed in."""

    __tablename__ = "records_type_classes"

    document_type_id: Mapped[str] = mapped_column(ForeignKey("document_types.id"), primary_key=True)
    class_id: Mapped[str] = mapped_column(ForeignKey("records_classes.id"), index=True)


class RecordInfo(Base):
    """A document's place in the file plan, its retention clock and its record declaration."""

    __tablename__ = "records_documents"
    __table_args__ = (
        # The sweep: documents due by now, still active (see records/service/disposition.py).
        Index("ix_records_documents_due", "disposition", "due_at"),
        Index("ix_records_documents_class", "class_id", "document_id"),
    )

    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), primary_key=True)
    class_id: Mapped[str | None] = mapped_column(ForeignKey("records_classes.id"))
    customer_id: Mapped[str | None] = mapped_column(String(36), index=True)
    classified_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    trigger_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # None: the trigger has not happened
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    declared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # the filing date; never edited
    declared_by: Mapped[str | None] = mapped_column(String(150))
    # "active" (retained), "pending" (in an open disposition batch), "review", "destroyed", "transferred"
    disposition: Mapped[str] = mapped_column(String(20), default="active")
    erasure_id: Mapped[str | None] = mapped_column(ForeignKey("records_erasure_requests.id"))
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # S3 Object Lock retention set
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class BusinessEvent(Base):
    """A business event for a customer (such as account_closed) that starts event-based retention clocks."""

    __tablename__ = "records_business_events"
    __table_args__ = (Index("ix_records_business_events_customer", "customer_id", "type", "occurred_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(100))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    recorded_by: Mapped[str] = mapped_column(String(150))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LegalHold(Base):
    """A legal hold: while active, none of its documents may be destroyed, deleted or brought forward."""

    __tablename__ = "records_holds"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    matter_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    state: Mapped[str] = mapped_column(String(20), default="active")
    created_by: Mapped[str] = mapped_column(String(150))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    released_by: Mapped[str | None] = mapped_column(String(150))
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    release_reason: Mapped[str | None] = mapped_column(Text)


class HoldItem(Base):
    """A document under a hold; `released_at` is set when the hold is released."""

    __tablename__ = "records_hold_items"
    __table_args__ = (Index("ix_records_hold_items_document", "document_id", "released_at"),)

    hold_id: Mapped[str] = mapped_column(ForeignKey("records_holds.id"), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), primary_key=True)
    source: Mapped[str] = mapped_column(String(20))  # "document", "customer" or "query"
    added_by: Mapped[str] = mapped_column(String(150))
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    versions: Mapped[list[str]] = mapped_column(JSONType, default=list)  # the version labels it covers
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class DispositionBatch(Base):
    """Documents whose retention ended, proposed together; nothing happens until a records manager approves."""

    __tablename__ = "records_disposition_batches"
    __table_args__ = (Index("ix_records_disposition_batches_state", "state", "proposed_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # "proposed" → "approved" → "executing" → "completed"; or "rejected"
    state: Mapped[str] = mapped_column(String(20), default="proposed")
    as_of: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # the time the sweep compared due dates with
    proposed_by: Mapped[str] = mapped_column(String(150))
    proposed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    approved_by: Mapped[str | None] = mapped_column(String(150))
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    certificate_id: Mapped[str | None] = mapped_column(ForeignKey("documents.id"))
    summary: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    note: Mapped[str | None] = mapped_column(Text)


class DispositionItem(Base):
    """One document in a disposition batch, the action its rule asks for, and what became of it."""

    __tablename__ = "records_disposition_items"
    __table_args__ = (Index("ix_records_disposition_items_document", "document_id"),)

    batch_id: Mapped[str] = mapped_column(
        ForeignKey("records_disposition_batches.id", name="fk_records_disposition_items_batch"), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), primary_key=True)
    class_id: Mapped[str | None] = mapped_column(ForeignKey("records_classes.id"))
    action: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    exclude_reason: Mapped[str | None] = mapped_column(Text)
    excluded_by: Mapped[str | None] = mapped_column(String(150))
    # None until executed; then "destroyed", "transferred", "review", or "skipped" (held or changed meanwhile)
    outcome: Mapped[str | None] = mapped_column(String(20))
    outcome_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    outcome_note: Mapped[str | None] = mapped_column(Text)


class Tombstone(Base):
    """What is left of a destroyed document: ids, class, dates, hashes and who approved it."""

    __tablename__ = "records_tombstones"

    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id"), primary_key=True)
    document_type: Mapped[str] = mapped_column(String(100))
    class_code: Mapped[str | None] = mapped_column(String(50))
    rule: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    declared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    destroyed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(20))  # "destroy", "transfer" or "erasure"
    versions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)  # label, sha256, size
    approved_by: Mapped[str] = mapped_column(String(150))
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("records_disposition_batches.id"), index=True)
    erasure_id: Mapped[str | None] = mapped_column(ForeignKey("records_erasure_requests.id"), index=True)
    transfer_package: Mapped[str | None] = mapped_column(String(500))


class ErasureRequest(Base):
    """A customer's erasure request (GDPR Art. 17) and the report of what was erased and what is kept, and why."""

    __tablename__ = "records_erasure_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    reference: Mapped[str | None] = mapped_column(String(200))
    requested_by: Mapped[str] = mapped_column(String(150))
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    erased: Mapped[int] = mapped_column(Integer, default=0)
    kept: Mapped[int] = mapped_column(Integer, default=0)
    report: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
