"""correspondence: templates, content blocks, approval states, targeting rules

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "correspondence_templates",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("locale", sa.String(35), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("category", sa.String(50), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("document_id", sa.String(36), nullable=False),
        sa.Column("schema", JSON, nullable=False),
        sa.Column("sample_data", JSON, nullable=False),
        sa.Column("active_major", sa.Integer(), nullable=True),
        sa.Column("active_minor", sa.Integer(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(36), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"],
                                name="fk_correspondence_templates_document"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"],
                                name="fk_correspondence_templates_created_by"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_correspondence_templates")),
        sa.UniqueConstraint("document_id", name=op.f("uq_correspondence_templates_document_id")),
        sa.UniqueConstraint("kind", "name", "locale", name="uq_correspondence_templates_variant"),
    )
    op.create_index(op.f("ix_correspondence_templates_name"), "correspondence_templates", ["name"])
    op.create_table(
        "correspondence_template_versions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("template_id", sa.String(36), nullable=False),
        sa.Column("major", sa.Integer(), nullable=False),
        sa.Column("minor", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("submitted_by", sa.String(36), nullable=True),
        _when("submitted_at", nullable=True),
        sa.Column("decided_by", sa.String(36), nullable=True),
        _when("decided_at", nullable=True),
        sa.Column("history", JSON, nullable=False),
        sa.Column("blocks", JSON, nullable=False),
        sa.Column("variables", JSON, nullable=False),
        sa.Column("rules", JSON, nullable=False),
        sa.Column("data_schema", JSON, nullable=False),
        sa.ForeignKeyConstraint(["template_id"], ["correspondence_templates.id"],
                                name="fk_correspondence_versions_template"),
        sa.ForeignKeyConstraint(["submitted_by"], ["users.id"],
                                name="fk_correspondence_versions_submitted_by"),
        sa.ForeignKeyConstraint(["decided_by"], ["users.id"],
                                name="fk_correspondence_versions_decided_by"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_correspondence_template_versions")),
        sa.UniqueConstraint("template_id", "major", "minor", name="uq_correspondence_versions_label"),
    )
    op.create_index("ix_correspondence_versions_template", "correspondence_template_versions",
                    ["template_id"])
    op.create_table(
        "correspondence_rules",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("template_id", sa.String(36), nullable=False),
        sa.Column("slot", sa.String(100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("condition", sa.Text(), nullable=False),
        sa.Column("block", sa.String(100), nullable=False),
        sa.Column("created_by", sa.String(36), nullable=False),
        _when("created_at"),
        sa.ForeignKeyConstraint(["template_id"], ["correspondence_templates.id"],
                                name="fk_correspondence_rules_template"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name="fk_correspondence_rules_created_by"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_correspondence_rules")),
    )
    op.create_index("ix_correspondence_rules_template", "correspondence_rules", ["template_id", "slot", "position"])
    # Templates and content blocks are DOCX files: say so in their document types, so any other upload is a 415.
    types = sa.table("document_types", sa.column("name", sa.String), sa.column("allowed_media_types", JSON))
    op.execute(types.update().where(types.c.name.in_(["template", "content-block"]))
               .values(allowed_media_types=[DOCX]))


def downgrade() -> None:
    types = sa.table("document_types", sa.column("name", sa.String), sa.column("allowed_media_types", JSON))
    op.execute(types.update().where(types.c.name.in_(["template", "content-block"])).values(allowed_media_types=[]))
    op.drop_index("ix_correspondence_rules_template", table_name="correspondence_rules")
    op.drop_table("correspondence_rules")
    op.drop_index("ix_correspondence_versions_template",
                  table_name="correspondence_template_versions")
    op.drop_table("correspondence_template_versions")
    op.drop_index(op.f("ix_correspondence_templates_name"), table_name="correspondence_templates")
    op.drop_table("correspondence_templates")
