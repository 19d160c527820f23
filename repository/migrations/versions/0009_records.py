"""records: file plan, retention state per document, business events, legal holds, disposition, tombstones,
erasure requests; documents.restricted

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}")


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch_op:
        batch_op.add_column(sa.Column("restricted", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "records_classes",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("code", sa.String(50), nullable=False),
        sa.Column("parent_id", sa.String(36), nullable=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=True),
        sa.Column("period_value", sa.Integer(), nullable=False),
        sa.Column("period_unit", sa.String(10), nullable=False),
        sa.Column("cutoff", sa.String(20), nullable=True),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("auto_declare", sa.Boolean(), nullable=False),
        sa.Column("legal_basis", sa.String(500), nullable=True),
        sa.Column("rule_revision", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(150), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        _fk("records_classes", "parent_id", "records_classes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records_classes")),
        sa.UniqueConstraint("code", name=op.f("uq_records_classes_code")),
    )
    op.create_index("ix_records_classes_parent_id", "records_classes", ["parent_id"])
    op.create_table(
        "records_type_classes",
        sa.Column("document_type_id", sa.String(36), nullable=False),
        sa.Column("class_id", sa.String(36), nullable=False),
        _fk("records_type_classes", "document_type_id", "document_types"),
        _fk("records_type_classes", "class_id", "records_classes"),
        sa.PrimaryKeyConstraint("document_type_id", name=op.f("pk_records_type_classes")),
    )
    op.create_index("ix_records_type_classes_class_id", "records_type_classes", ["class_id"])
    op.create_table(
        "records_erasure_requests",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("requested_by", sa.String(150), nullable=False),
        _when("requested_at"),
        sa.Column("erased", sa.Integer(), nullable=False),
        sa.Column("kept", sa.Integer(), nullable=False),
        sa.Column("report", JSON, nullable=False),
        _fk("records_erasure_requests", "customer_id", "customers"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records_erasure_requests")),
    )
    op.create_index("ix_records_erasure_requests_customer_id", "records_erasure_requests", ["customer_id"])
    op.create_table(
        "records_documents",
        sa.Column("document_id", sa.String(36), nullable=False),
        sa.Column("class_id", sa.String(36), nullable=True),
        sa.Column("customer_id", sa.String(36), nullable=True),
        _when("classified_at"),
        _when("trigger_at", nullable=True),
        _when("due_at", nullable=True),
        _when("declared_at", nullable=True),
        sa.Column("declared_by", sa.String(150), nullable=True),
        sa.Column("disposition", sa.String(20), nullable=False),
        sa.Column("erasure_id", sa.String(36), nullable=True),
        _when("locked_until", nullable=True),
        _when("updated_at"),
        _fk("records_documents", "document_id", "documents"),
        _fk("records_documents", "class_id", "records_classes"),
        _fk("records_documents", "erasure_id", "records_erasure_requests"),
        sa.PrimaryKeyConstraint("document_id", name=op.f("pk_records_documents")),
    )
    op.create_index("ix_records_documents_due", "records_documents", ["disposition", "due_at"])
    op.create_index("ix_records_documents_class", "records_documents", ["class_id", "document_id"])
    op.create_index("ix_records_documents_customer_id", "records_documents", ["customer_id"])
    op.create_table(
        "records_business_events",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("customer_id", sa.String(36), nullable=False),
        _when("occurred_at"),
        sa.Column("recorded_by", sa.String(150), nullable=False),
        _when("recorded_at"),
        _fk("records_business_events", "customer_id", "customers"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records_business_events")),
    )
    op.create_index("ix_records_business_events_customer", "records_business_events",
                    ["customer_id", "type", "occurred_at"])
    op.create_table(
        "records_holds",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("matter_ref", sa.String(200), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created_by", sa.String(150), nullable=False),
        _when("created_at"),
        sa.Column("released_by", sa.String(150), nullable=True),
        _when("released_at", nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records_holds")),
    )
    op.create_index("ix_records_holds_matter_ref", "records_holds", ["matter_ref"])
    op.create_table(
        "records_hold_items",
        sa.Column("hold_id", sa.String(36), nullable=False),
        sa.Column("document_id", sa.String(36), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("added_by", sa.String(150), nullable=False),
        _when("added_at"),
        sa.Column("versions", JSON, nullable=False),
        _when("released_at", nullable=True),
        _fk("records_hold_items", "hold_id", "records_holds"),
        _fk("records_hold_items", "document_id", "documents"),
        sa.PrimaryKeyConstraint("hold_id", "document_id", name=op.f("pk_records_hold_items")),
    )
    op.create_index("ix_records_hold_items_document", "records_hold_items", ["document_id", "released_at"])
    op.create_table(
        "records_disposition_batches",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        _when("as_of"),
        sa.Column("proposed_by", sa.String(150), nullable=False),
        _when("proposed_at"),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("approved_by", sa.String(150), nullable=True),
        _when("approved_at", nullable=True),
        _when("completed_at", nullable=True),
        sa.Column("certificate_id", sa.String(36), nullable=True),
        sa.Column("summary", JSON, nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        _fk("records_disposition_batches", "certificate_id", "documents"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records_disposition_batches")),
    )
    op.create_index("ix_records_disposition_batches_state", "records_disposition_batches", ["state", "proposed_at"])
    op.create_table(
        "records_disposition_items",
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.Column("document_id", sa.String(36), nullable=False),
        sa.Column("class_id", sa.String(36), nullable=True),
        sa.Column("action", sa.String(20), nullable=False),
        _when("due_at", nullable=True),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.Column("exclude_reason", sa.Text(), nullable=True),
        sa.Column("excluded_by", sa.String(150), nullable=True),
        sa.Column("outcome", sa.String(20), nullable=True),
        _when("outcome_at", nullable=True),
        sa.Column("outcome_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["records_disposition_batches.id"], name="fk_records_disposition_items_batch"),
        _fk("records_disposition_items", "document_id", "documents"),
        _fk("records_disposition_items", "class_id", "records_classes"),
        sa.PrimaryKeyConstraint("batch_id", "document_id", name=op.f("pk_records_disposition_items")),
    )
    op.create_index("ix_records_disposition_items_document", "records_disposition_items", ["document_id"])
    op.create_table(
        "records_tombstones",
        sa.Column("document_id", sa.String(36), nullable=False),
        sa.Column("document_type", sa.String(100), nullable=False),
        sa.Column("class_code", sa.String(50), nullable=True),
        sa.Column("rule", JSON, nullable=False),
        _when("created_at"),
        _when("declared_at", nullable=True),
        _when("due_at", nullable=True),
        _when("destroyed_at"),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("versions", JSON, nullable=False),
        sa.Column("approved_by", sa.String(150), nullable=False),
        sa.Column("batch_id", sa.String(36), nullable=True),
        sa.Column("erasure_id", sa.String(36), nullable=True),
        sa.Column("transfer_package", sa.String(500), nullable=True),
        _fk("records_tombstones", "document_id", "documents"),
        _fk("records_tombstones", "batch_id", "records_disposition_batches"),
        _fk("records_tombstones", "erasure_id", "records_erasure_requests"),
        sa.PrimaryKeyConstraint("document_id", name=op.f("pk_records_tombstones")),
    )
    op.create_index("ix_records_tombstones_batch_id", "records_tombstones", ["batch_id"])
    op.create_index("ix_records_tombstones_erasure_id", "records_tombstones", ["erasure_id"])


def downgrade() -> None:
    for table in ("records_tombstones", "records_disposition_items", "records_disposition_batches",
                  "records_hold_items", "records_holds", "records_business_events", "records_documents",
                  "records_erasure_requests", "records_type_classes", "records_classes"):
        op.drop_table(table)
    with op.batch_alter_table("documents") as batch_op:
        batch_op.drop_column("restricted")
