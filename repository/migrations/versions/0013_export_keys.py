"""search: production packages are encrypted at rest (each export keeps its data key wrapped by the key ring)
and expire

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("matter_exports", sa.Column("kek_id", sa.String(64), nullable=True))
    op.add_column("matter_exports", sa.Column("wrapped_key", sa.LargeBinary(), nullable=True))
    op.add_column("matter_exports", sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("matter_exports") as batch:
        batch.drop_column("expired_at")
        batch.drop_column("wrapped_key")
        batch.drop_column("kek_id")
