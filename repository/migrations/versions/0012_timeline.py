"""search: the customer history timeline

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "search_timeline",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, autoincrement=True),
        sa.Column("source_event_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("subject_type", sa.String(20), nullable=False),
        sa.Column("subject_id", sa.String(36), nullable=False),
        sa.Column("document_id", sa.String(36), nullable=True),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("summary", sa.String(1000), nullable=False),
        sa.Column("channel", sa.String(20), nullable=True),
        sa.Column("state", sa.String(30), nullable=True),
        sa.Column("details", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_timeline")),
        sa.UniqueConstraint("source_event_id", name=op.f("uq_search_timeline_source_event_id")),
    )
    op.create_index("ix_search_timeline_customer_at", "search_timeline", ["customer_id", "at", "id"])
    op.create_index("ix_search_timeline_document_id", "search_timeline", ["document_id"])


def downgrade() -> None:
    op.drop_table("search_timeline")
