"""Tables of correspondence authoring: templates and content blocks (each a repository document), the approval
state of each of their versions, and the targeting rules of a template."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from repository.db import Base
from repository.types import JSONType, UTCDateTime, new_id, utcnow

TEMPLATE, BLOCK = "template", "block"
DRAFT, SUBMITTED, APPROVED, REJECTED = "draft", "submitted", "approved", "rejected"


class Template(Base):
    """A template or a content block: its name, locale variant, category and data schema. The DOCX itself, its
    versions and its check-out live on the repository document."""

    __tablename__ = "correspondence_templates"
    __table_args__ = (UniqueConstraint("kind", "name", "locale", name="uq_correspondence_templates_variant"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100), index=True)
    locale: Mapped[str] = mapped_column(String(35))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    category: Mapped[str] = mapped_column(String(50), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", name="fk_correspondence_templates_document"), unique=True)
    data_schema: Mapped[dict[str, Any]] = mapped_column("schema", JSONType, default=dict)
    sample_data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The version production letters use: the newest approved one, or the one an admin rolled back to.
    active_major: Mapped[int | None] = mapped_column(Integer)
    active_minor: Mapped[int | None] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id", name="fk_correspondence_templates_created_by"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def active_label(self) -> str | None:
        """The active version as "major.minor", or None before the first approval."""
        return None if self.active_major is None else f"{self.active_major}.{self.active_minor}"


class TemplateVersion(Base):
    """The approval state of one version of a template; a version without a row is a draft."""

    __tablename__ = "correspondence_template_versions"
    __table_args__ = (UniqueConstraint("template_id", "major", "minor", name="uq_correspondence_versions_label"),
                      Index("ix_correspondence_versions_template", "template_id"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    template_id: Mapped[str] = mapped_column(
        ForeignKey("correspondence_templates.id", name="fk_correspondence_versions_template"))
    major: Mapped[int] = mapped_column(Integer)
    minor: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20), default=DRAFT)
    submitted_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", name="fk_correspondence_versions_submitted_by"))
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", name="fk_correspondence_versions_decided_by"))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Every transition with its actor, time and comment, for the template's page (the audit trail has them too).
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # What the version uses, recorded when it is submitted: "which templates use this block" reads it.
    blocks: Mapped[list[str]] = mapped_column(JSONType, default=list)
    variables: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # The targeting rules and data schema as submitted: approval covers them with the DOCX, and production
    # letters use this snapshot, so a rule or schema edit reaches customers only through a new approval.
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    data_schema: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    @property
    def label(self) -> str:
        """"major.minor"."""
        return f"{self.major}.{self.minor}"


class TemplateRule(Base):
    """One row of a template's targeting table: in `slot`, the first rule whose condition holds picks `block`."""

    __tablename__ = "correspondence_rules"
    __table_args__ = (Index("ix_correspondence_rules_template", "template_id", "slot", "position"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    template_id: Mapped[str] = mapped_column(
        ForeignKey("correspondence_templates.id", name="fk_correspondence_rules_template"))
    slot: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)
    condition: Mapped[str] = mapped_column(Text)
    block: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id", name="fk_correspondence_rules_created_by"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
