"""API shapes of records management: file-plan classes, a document's records state, business events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class ClassIn(BaseModel):
    """A new file-plan class and its retention rule."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=50)
    title: str = Field(max_length=300)
    description: str = Field("", max_length=10_000)
    parent: str | None = Field(None, description="the parent class's code or id")
    trigger: str = Field(description="created | declared | letter_sent | event")
    event_type: str | None = Field(None, description="the business event, when trigger is 'event'")
    period_value: int = Field(ge=0, le=1000)
    period_unit: str = Field(description="days | months | years")
    cutoff: str | None = Field(None, description="null | calendar_year | fiscal_year")
    action: str = Field(description="destroy | review | transfer")
    auto_declare: bool = False
    legal_basis: str | None = Field(None, max_length=500)
    document_types: list[str] = Field(default_factory=list, description="document types filed in this class")


class ClassPatch(BaseModel):
    """Changes to a class; a rule change recomputes its documents' due dates. `reason` is required."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)
    title: str | None = None
    description: str | None = None
    parent: str | None = None
    trigger: str | None = None
    event_type: str | None = None
    period_value: int | None = Field(None, ge=0, le=1000)
    period_unit: str | None = None
    cutoff: str | None = None
    action: str | None = None
    auto_declare: bool | None = None
    legal_basis: str | None = None


class ClassOut(BaseModel):
    """A file-plan class."""

    id: str
    code: str
    parent_id: str | None
    title: str
    description: str
    trigger: str
    event_type: str | None
    period_value: int
    period_unit: str
    cutoff: str | None
    action: str
    auto_declare: bool
    legal_basis: str | None
    rule_revision: int
    document_types: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime


class DocumentTypesIn(BaseModel):
    """The document types whose new documents file in a class."""

    model_config = ConfigDict(extra="forbid")

    document_types: list[str]


class RecordOut(BaseModel):
    """A document's records state."""

    document_id: str
    classified: bool
    class_code: str | None
    class_title: str | None
    trigger: str | None
    trigger_at: dt.datetime | None
    due_at: dt.datetime | None
    declared: bool
    declared_at: dt.datetime | None = Field(description="the filing date; never changes once set")
    declared_by: str | None
    disposition: str
    held: bool
    holds: list[str]
    restricted: bool


class ReclassifyIn(BaseModel):
    """Move a document to another class."""

    model_config = ConfigDict(extra="forbid")

    class_: str = Field(alias="class", description="the class's code or id")
    reason: str = Field(min_length=1, max_length=2000)


class ExtendIn(BaseModel):
    """Keep a document until a later date (a review decision)."""

    model_config = ConfigDict(extra="forbid")

    until: AwareDatetime
    reason: str = Field(min_length=1, max_length=2000)


class BusinessEventIn(BaseModel):
    """A business event for a customer that starts event-based retention clocks."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(max_length=100)
    customer_id: str = Field(max_length=36)
    occurred_at: AwareDatetime


class BusinessEventOut(BaseModel):
    """A recorded business event and how many documents' clocks it started."""

    id: str
    type: str
    customer_id: str
    occurred_at: dt.datetime
    recorded_by: str
    recorded_at: dt.datetime
    documents_started: int


def dump(model: BaseModel) -> dict[str, Any]:
    """A response body as JSON-ready data."""
    return model.model_dump(mode="json")
