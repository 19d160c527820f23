"""Pydantic shapes of templates, blocks, their versions and rules as the API shows them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field


class VersionStateOut(BaseModel):
    """One version of a template with its approval state."""

    version: str
    state: str
    active: bool
    author: str | None
    created_at: dt.datetime
    comment: str
    submitted_by: str | None = None
    submitted_at: dt.datetime | None = None
    decided_by: str | None = None
    decided_at: dt.datetime | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    blocks: list[str] = Field(default_factory=list)


class RuleIn(BaseModel):
    """One targeting rule."""

    slot: str = Field(min_length=1, max_length=100)
    condition: str = Field(min_length=1, max_length=2000)
    block: str = Field(min_length=1, max_length=100)


class RuleOut(RuleIn):
    """One targeting rule with its place in its slot."""

    position: int


class TemplateRef(BaseModel):
    """A template named in another answer (e.g. the templates that use a block)."""

    id: str
    name: str
    locale: str


class TemplateOut(BaseModel):
    """A template or content block."""

    id: str
    kind: str
    name: str
    locale: str
    is_default: bool
    category: str
    description: str
    document_id: str
    schema_: dict[str, Any] = Field(alias="schema", serialization_alias="schema")
    sample_data: dict[str, Any]
    active_version: str | None
    current_version: str
    checked_out_by: str | None
    revision: int
    created_by: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    versions: list[VersionStateOut] | None = None
    rules: list[RuleOut] | None = None
    used_by: list[TemplateRef] | None = None

    model_config = {"populate_by_name": True}


class TemplatePatch(BaseModel):
    """Changeable template fields; omitted fields stay as they are."""

    category: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    sample_data: dict[str, Any] | None = None
    is_default: bool | None = None

    model_config = {"populate_by_name": True, "extra": "forbid"}


class DecisionIn(BaseModel):
    """Submit, approve or reject: an optional comment and version (the newest when omitted)."""

    comment: str = Field(default="", max_length=4000)
    version: str | None = Field(default=None, max_length=20)

    model_config = {"extra": "forbid"}


class RollbackIn(BaseModel):
    """Make an earlier approved version active again."""

    version: str = Field(min_length=3, max_length=20)
    reason: str = Field(min_length=1, max_length=4000)

    model_config = {"extra": "forbid"}


class PreviewIn(BaseModel):
    """Preview data: omitted data means the template's stored sample data."""

    data: dict[str, Any] | None = None
    version: str | None = Field(default=None, max_length=20)
    customer_id: str | None = Field(default=None, max_length=36)

    model_config = {"extra": "forbid"}
