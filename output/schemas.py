"""Pydantic shapes of letters and their dispatch ledger as the API shows them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from output.models import DeliveryEvent, Dispatch, Letter


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
