"""output: letters, the dispatch ledger, delivery events

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "letters",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("reference", sa.String(40), nullable=False),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("template_id", sa.String(36), nullable=False),
        sa.Column("template_name", sa.String(100), nullable=False),
        sa.Column("template_version", sa.String(20), nullable=False),
        sa.Column("category", sa.String(50), nullable=False),
        sa.Column("data_sha256", sa.String(64), nullable=False),
        sa.Column("document_id", sa.String(36), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("batch_id", sa.String(36), nullable=True),
        sa.Column("created_by", sa.String(36), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name="fk_letters_customer"),
        sa.ForeignKeyConstraint(["template_id"], ["correspondence_templates.id"], name="fk_letters_template"),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], name="fk_letters_document"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name="fk_letters_created_by"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letters")),
        sa.UniqueConstraint("reference", name=op.f("uq_letters_reference")),
        sa.UniqueConstraint("document_id", name=op.f("uq_letters_document_id")),
    )
    op.create_index(op.f("ix_letters_batch_id"), "letters", ["batch_id"])
    op.create_index("ix_letters_customer_created", "letters", ["customer_id", "created_at"])
    op.create_table(
        "dispatches",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("letter_id", sa.String(36), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _when("next_attempt_at", nullable=True),
        _when("lease_until", nullable=True),
        sa.Column("provider_ref", sa.String(500), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("fallback_of", sa.String(36), nullable=True),
        _when("sent_at", nullable=True),
        _when("delivered_at", nullable=True),
        _when("created_at"),
        _when("updated_at"),
        sa.ForeignKeyConstraint(["letter_id"], ["letters.id"], name="fk_dispatches_letter"),
        sa.ForeignKeyConstraint(["fallback_of"], ["dispatches.id"], name="fk_dispatches_fallback_of"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatches")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_dispatches_idempotency_key")),
        sa.UniqueConstraint("letter_id", "channel", name="uq_dispatches_letter_channel"),
    )
    op.create_index("ix_dispatches_due", "dispatches", ["state", "next_attempt_at"])
    op.create_table(
        "delivery_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("dispatch_id", sa.String(36), nullable=False),
        sa.Column("letter_id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        _when("at"),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["dispatch_id"], ["dispatches.id"], name="fk_delivery_events_dispatch"),
        sa.ForeignKeyConstraint(["letter_id"], ["letters.id"], name="fk_delivery_events_letter"),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name="fk_delivery_events_customer"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_events")),
    )
    op.create_index("ix_delivery_events_customer_at", "delivery_events", ["customer_id", "at"])
    op.create_index("ix_delivery_events_letter", "delivery_events", ["letter_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_delivery_events_letter", table_name="delivery_events")
    op.drop_index("ix_delivery_events_customer_at", table_name="delivery_events")
    op.drop_table("delivery_events")
    op.drop_index("ix_dispatches_due", table_name="dispatches")
    op.drop_table("dispatches")
    op.drop_index("ix_letters_customer_created", table_name="letters")
    op.drop_index(op.f("ix_letters_batch_id"), table_name="letters")
    op.drop_table("letters")
