"""output: letter batches and their rows; a batch row makes at most one letter

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "letter_batches",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("template_id", sa.String(36), nullable=False),
        sa.Column("template_name", sa.String(100), nullable=False),
        sa.Column("template_version", sa.String(20), nullable=False),
        sa.Column("versions", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("category", sa.String(50), nullable=True),
        sa.Column("channel", sa.String(20), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("source_name", sa.String(255), nullable=False),
        sa.Column("source_sha256", sa.String(64), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("rows_failed", sa.Integer(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("failed_runs", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        _when("lease_until", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(36), nullable=False),
        _when("created_at"),
        _when("started_at", nullable=True),
        _when("finished_at", nullable=True),
        _when("updated_at"),
        sa.ForeignKeyConstraint(["template_id"], ["correspondence_templates.id"],
                                name="fk_letter_batches_template"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name="fk_letter_batches_created_by"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letter_batches")),
    )
    op.create_index("ix_letter_batches_status", "letter_batches", ["status", "lease_until"])
    op.create_table(
        "letter_batch_rows",
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.Column("row_no", sa.Integer(), nullable=False),
        sa.Column("customer_ref", sa.String(200), nullable=True),
        sa.Column("customer_id", sa.String(36), nullable=True),
        sa.Column("data", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("letter_id", sa.String(36), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["letter_batches.id"], name="fk_letter_batch_rows_batch"),
        sa.PrimaryKeyConstraint("batch_id", "row_no", name=op.f("pk_letter_batch_rows")),
    )
    op.create_index("ix_letter_batch_rows_state", "letter_batch_rows", ["batch_id", "state", "row_no"])
    op.add_column("letters", sa.Column("batch_row", sa.Integer(), nullable=True))
    op.create_index("uq_letters_batch_row", "letters", ["batch_id", "batch_row"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_letters_batch_row", table_name="letters")
    with op.batch_alter_table("letters") as batch:
        batch.drop_column("batch_row")
    op.drop_index("ix_letter_batch_rows_state", table_name="letter_batch_rows")
    op.drop_table("letter_batch_rows")
    op.drop_index("ix_letter_batches_status", table_name="letter_batches")
    op.drop_table("letter_batches")
