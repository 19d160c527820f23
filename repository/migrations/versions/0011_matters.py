"""search: e-discovery matters, saved searches, holds placed from them, production exports, chain of custody

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}")


def upgrade() -> None:
    op.create_table(
        "matters",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("custodians", JSON, nullable=False),
        sa.Column("customers", JSON, nullable=False),
        sa.Column("date_from", sa.Date(), nullable=True),
        sa.Column("date_to", sa.Date(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("bates_prefix", sa.String(20), nullable=False),
        sa.Column("next_bates", sa.BigInteger(), nullable=False),
        sa.Column("next_volume", sa.Integer(), nullable=False),
        sa.Column("custody_seq", sa.Integer(), nullable=False),
        sa.Column("custody_hash", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(150), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        sa.Column("closed_by", sa.String(150), nullable=True),
        _when("closed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_matters")),
    )
    op.create_table(
        "matter_searches",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("matter_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("q", sa.Text(), nullable=True),
        sa.Column("document_type", sa.String(100), nullable=True),
        sa.Column("customer_id", sa.String(36), nullable=True),
        _when("created_from", nullable=True),
        _when("created_to", nullable=True),
        sa.Column("meta", JSON, nullable=False),
        sa.Column("created_by", sa.String(150), nullable=False),
        _when("created_at"),
        _fk("matter_searches", "matter_id", "matters"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_matter_searches")),
        sa.UniqueConstraint("matter_id", "name", name="uq_matter_searches_matter_name"),
    )
    op.create_table(
        "matter_holds",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("matter_id", sa.String(36), nullable=False),
        sa.Column("hold_id", sa.String(36), nullable=False),
        sa.Column("search_id", sa.String(36), nullable=False),
        sa.Column("documents", sa.Integer(), nullable=False),
        sa.Column("versions", sa.Integer(), nullable=False),
        sa.Column("placed_by", sa.String(150), nullable=False),
        _when("placed_at"),
        _fk("matter_holds", "matter_id", "matters"),
        _fk("matter_holds", "hold_id", "records_holds"),
        _fk("matter_holds", "search_id", "matter_searches"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_matter_holds")),
    )
    op.create_index("ix_matter_holds_matter_id", "matter_holds", ["matter_id"])
    op.create_table(
        "matter_exports",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("matter_id", sa.String(36), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("volume", sa.String(20), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("search_id", sa.String(36), nullable=True),
        sa.Column("requested_by", sa.String(150), nullable=False),
        _when("requested_at"),
        sa.Column("document_count", sa.Integer(), nullable=False),
        sa.Column("excluded_unreadable", sa.Integer(), nullable=False),
        sa.Column("bates_begin", sa.BigInteger(), nullable=True),
        sa.Column("bates_end", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        _when("lease_until", nullable=True),
        _when("started_at", nullable=True),
        _when("completed_at", nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("package_sha256", sa.String(64), nullable=True),
        sa.Column("zip_sha256", sa.String(64), nullable=True),
        sa.Column("zip_size", sa.BigInteger(), nullable=True),
        _fk("matter_exports", "matter_id", "matters"),
        _fk("matter_exports", "search_id", "matter_searches"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_matter_exports")),
    )
    op.create_index("ix_matter_exports_matter_id", "matter_exports", ["matter_id"])
    op.create_index("ix_matter_exports_state", "matter_exports", ["state", "requested_at"])
    op.create_table(
        "matter_export_items",
        sa.Column("export_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.String(36), nullable=False),
        sa.Column("version_id", sa.String(36), nullable=False),
        sa.Column("bates_begin", sa.BigInteger(), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=True),
        _fk("matter_export_items", "export_id", "matter_exports"),
        _fk("matter_export_items", "document_id", "documents"),
        _fk("matter_export_items", "version_id", "document_versions"),
        sa.PrimaryKeyConstraint("export_id", "position", name=op.f("pk_matter_export_items")),
    )
    op.create_table(
        "matter_events",
        sa.Column("matter_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        _when("at"),
        sa.Column("actor", sa.String(150), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        _fk("matter_events", "matter_id", "matters"),
        sa.PrimaryKeyConstraint("matter_id", "seq", name=op.f("pk_matter_events")),
    )


def downgrade() -> None:
    for table in ("matter_events", "matter_export_items", "matter_exports", "matter_holds", "matter_searches",
                  "matters"):
        op.drop_table(table)
