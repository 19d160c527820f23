"""Pydantic shapes of letters and their dispatch ledger as the API shows them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from output.models import DeliveryEvent, Dispatch, Letter, LetterBatch, LetterBatchRow


class LetterIn(BaseModel):
    """A letter to compose, archive and send."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(min_length=1, max_length=200, description="template name or id")
    customer_id: str = Field(min_length=1, max_length=36)
    data: dict[str, Any] = Field(default_factory=dict, description="checked against the template's data schema")
    channel: str | None = Field(None, max_length=20, description="print, email, sms or portal: overrides the choice")
    category: str | None = Field(None, max_length=50, pattern=r"^[a-z][a-z0-9_-]*$",
                                 description="defaults to the template's category")


class DeliveryEventOut(BaseModel):
    """Something that happened to the letter on one channel."""

    channel: str
    kind: str
    at: dt.datetime
    detail: str


class DispatchOut(BaseModel):
    """The letter's ledger row on one channel."""

    channel: str
    state: str
    attempts: int
    next_attempt_at: dt.datetime | None
    provider_ref: str | None
    reason: str | None
    last_error: str | None
    fallback_of: str | None
    sent_at: dt.datetime | None
    delivered_at: dt.datetime | None


class LetterOut(BaseModel):
    """A letter, its archived document, and its status per channel."""

    id: str
    reference: str
    status: str
    customer_id: str
    document_id: str
    template: str
    template_version: str
    category: str
    data_sha256: str
    pages: int
    batch_id: str | None
    created_at: dt.datetime
    channels: list[DispatchOut]
    events: list[DeliveryEventOut]


def letter_out(letter: Letter, rows: list[Dispatch], found: list[DeliveryEvent]) -> LetterOut:
    """The API shape of a letter with its ledger."""
    channel_of = {r.id: r.channel for r in rows}
    return LetterOut(
        id=letter.id, reference=letter.reference, status=letter.status, customer_id=letter.customer_id,
        document_id=letter.document_id, template=letter.template_name, template_version=letter.template_version,
        category=letter.category, data_sha256=letter.data_sha256, pages=letter.pages, batch_id=letter.batch_id,
        created_at=letter.created_at,
        channels=[DispatchOut(channel=r.channel, state=r.state, attempts=r.attempts, next_attempt_at=r.next_attempt_at,
                              provider_ref=r.provider_ref, reason=r.reason, last_error=r.last_error,
                              fallback_of=channel_of.get(r.fallback_of) if r.fallback_of else None,
                              sent_at=r.sent_at, delivered_at=r.delivered_at) for r in rows],
        events=[DeliveryEventOut(channel=channel_of.get(e.dispatch_id, ""), kind=e.kind, at=e.at, detail=e.detail)
                for e in found],
    )


class BatchIn(BaseModel):
    """A batch sent as JSON: the template and the rows (for big inputs, upload a CSV or JSON Lines file)."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(min_length=1, max_length=200, description="template name or id")
    rows: list[dict[str, Any]] = Field(min_length=1, max_length=10_000,
                                       description="objects with customer_ref or customer_id, and data")
    channel: str | None = Field(None, max_length=20, description="print, email, sms or portal for every letter")
    category: str | None = Field(None, max_length=50, pattern=r"^[a-z][a-z0-9_-]*$",
                                 description="defaults to the template's category")


class BatchRowError(BaseModel):
    """A row that made no letter, and why."""

    row: int = Field(description="the row's line in the file (JSON: its position, from 1)")
    customer_ref: str | None
    customer_id: str | None
    error: str


class BatchOut(BaseModel):
    """A batch and its progress; `errors` lists the first failed rows (all of them: GET .../errors)."""

    id: str
    status: str
    template: str
    template_version: str
    template_versions: dict[str, str] = Field(description="every locale variant's pinned version, by template id")
    category: str | None
    channel: str | None
    source_name: str
    source_sha256: str
    rows_total: int
    rows_done: int
    rows_failed: int
    rows_pending: int
    pages: int
    runs: int
    last_error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    errors: list[BatchRowError]


def batch_row_error(row: LetterBatchRow) -> BatchRowError:
    """The API shape of a failed row."""
    return BatchRowError(row=row.row_no, customer_ref=row.customer_ref, customer_id=row.customer_id,
                         error=row.error or "")


def batch_out(batch: LetterBatch, errors: list[LetterBatchRow]) -> BatchOut:
    """The API shape of a batch with its first failed rows."""
    return BatchOut(
        id=batch.id, status=batch.status, template=batch.template_name, template_version=batch.template_version,
        template_versions=batch.versions, category=batch.category, channel=batch.channel,
        source_name=batch.source_name, source_sha256=batch.source_sha256, rows_total=batch.rows_total,
        rows_done=batch.rows_done, rows_failed=batch.rows_failed,
        rows_pending=batch.rows_total - batch.rows_done - batch.rows_failed, pages=batch.pages, runs=batch.runs,
        last_error=batch.last_error, created_at=batch.created_at, started_at=batch.started_at,
        finished_at=batch.finished_at, errors=[batch_row_error(r) for r in errors])
