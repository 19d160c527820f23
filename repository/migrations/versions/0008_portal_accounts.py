"""repository: customer portal accounts (login email, password hash, activation code hash, lockout)

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "portal_accounts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("activation_code_sha256", sa.String(64), nullable=True),
        _when("activation_expires_at", nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        _when("locked_until", nullable=True),
        sa.Column("token_generation", sa.Integer(), nullable=False),
        sa.Column("invited_by", sa.String(36), nullable=True),
        _when("created_at"),
        _when("updated_at"),
        _when("activated_at", nullable=True),
        _when("last_login_at", nullable=True),
        _when("disabled_at", nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name="fk_portal_accounts_customer"),
        sa.ForeignKeyConstraint(["invited_by"], ["users.id"], name="fk_portal_accounts_invited_by"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_accounts")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_portal_accounts_customer_id")),
        sa.UniqueConstraint("email", name=op.f("uq_portal_accounts_email")),
        sa.UniqueConstraint("activation_code_sha256", name=op.f("uq_portal_accounts_activation_code_sha256")),
    )


def downgrade() -> None:
    op.drop_table("portal_accounts")
