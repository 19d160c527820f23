"""output: print house runs and mailpieces, and the admin-only `print-file` document type

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import datetime
import uuid

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
PRINT_FILE = "print-file"


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _types() -> sa.TableClause:
    return sa.table("document_types", sa.column("id"), sa.column("name"), sa.column("description"),
                    sa.column("allowed_media_types", JSON), sa.column("read_roles", JSON),
                    sa.column("write_roles", JSON), sa.column("created_at", sa.DateTime(timezone=True)))


def upgrade() -> None:
    op.create_table(
        "print_runs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("scheduled_on", sa.Date(), nullable=True),
        sa.Column("duplex", sa.Boolean(), nullable=False),
        sa.Column("pieces", sa.Integer(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("sheets", sa.Integer(), nullable=False),
        sa.Column("delivered", sa.Integer(), nullable=False),
        sa.Column("damaged", sa.Integer(), nullable=False),
        sa.Column("file_document_id", sa.String(36), nullable=False),
        sa.Column("manifest_document_id", sa.String(36), nullable=False),
        sa.Column("created_by", sa.String(36), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        sa.ForeignKeyConstraint(["file_document_id"], ["documents.id"], name="fk_print_runs_file"),
        sa.ForeignKeyConstraint(["manifest_document_id"], ["documents.id"], name="fk_print_runs_manifest"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name="fk_print_runs_created_by"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_print_runs")),
        sa.UniqueConstraint("scheduled_on", name=op.f("uq_print_runs_scheduled_on")),
    )
    op.create_index("ix_print_runs_created", "print_runs", ["created_at"])
    op.create_table(
        "print_pieces",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("dispatch_id", sa.String(36), nullable=False),
        sa.Column("letter_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("sheets", sa.Integer(), nullable=False),
        sa.Column("first_page", sa.Integer(), nullable=False),
        sa.Column("reprint_of", sa.String(36), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        _when("result_at", nullable=True),
        _when("created_at"),
        sa.ForeignKeyConstraint(["run_id"], ["print_runs.id"], name="fk_print_pieces_run"),
        sa.ForeignKeyConstraint(["dispatch_id"], ["dispatches.id"], name="fk_print_pieces_dispatch"),
        sa.ForeignKeyConstraint(["letter_id"], ["letters.id"], name="fk_print_pieces_letter"),
        sa.ForeignKeyConstraint(["reprint_of"], ["print_pieces.id"], name="fk_print_pieces_reprint_of"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_print_pieces")),
        sa.UniqueConstraint("run_id", "seq", name="uq_print_pieces_run_seq"),
        sa.UniqueConstraint("run_id", "dispatch_id", name="uq_print_pieces_run_dispatch"),
        sa.UniqueConstraint("reprint_of", name=op.f("uq_print_pieces_reprint_of")),
    )
    op.create_index("ix_print_pieces_dispatch", "print_pieces", ["dispatch_id"])
    op.create_index("ix_print_pieces_status", "print_pieces", ["status"])
    # Print files carry every customer's name and address: admins only (an admin may widen the type's roles).
    op.bulk_insert(_types(), [{
        "id": str(uuid.uuid4()), "name": PRINT_FILE,
        "description": "A print house file: the merged PDF of a print run, or its CSV manifest",
        "allowed_media_types": ["application/pdf", "text/plain"], "read_roles": ["admin"],
        "write_roles": ["admin"], "created_at": datetime.datetime.now(datetime.UTC),
    }])


def downgrade() -> None:
    op.drop_index("ix_print_pieces_status", table_name="print_pieces")
    op.drop_index("ix_print_pieces_dispatch", table_name="print_pieces")
    op.drop_table("print_pieces")
    op.drop_index("ix_print_runs_created", table_name="print_runs")
    op.drop_table("print_runs")
    # The type stays while documents of it exist (their content is not thrown away by a schema downgrade).
    op.execute(sa.text("DELETE FROM document_types WHERE name = :name AND NOT EXISTS "
                       "(SELECT 1 FROM documents WHERE documents.document_type_id = document_types.id)")
               .bindparams(name=PRINT_FILE))
