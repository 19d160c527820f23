"""customer profile (postal address, contact, preferences, consents, segments)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing customers get the defaults of a customer nobody has told us anything about (server defaults fill
    # the rows already there; new rows get the same values from the model).
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('salutation', sa.String(length=300), server_default='', nullable=False))
        batch_op.add_column(sa.Column('title', sa.String(length=50), server_default='', nullable=False))
        batch_op.add_column(sa.Column('address_lines', JSON, server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('city', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('region', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('postcode', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('country', sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column('email', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('mobile', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('locale', sa.String(length=35), server_default='en-GB', nullable=False))
        batch_op.add_column(sa.Column('channel_preferences', JSON, server_default='{}', nullable=False))
        batch_op.add_column(sa.Column('paperless', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('segment', JSON, server_default='{}', nullable=False))
        batch_op.add_column(sa.Column('address_undeliverable', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.add_column(sa.Column('undeliverable_reason', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('undeliverable_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='1', nullable=False))
        batch_op.create_index('ix_customers_name_id', ['name', 'id'], unique=False)

    op.create_table('customer_consents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.String(length=36), nullable=False),
    sa.Column('purpose', sa.String(length=100), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('recorded_by', sa.String(length=150), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_consents_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_consents'))
    )
    with op.batch_alter_table('customer_consents', schema=None) as batch_op:
        batch_op.create_index('ix_customer_consents_current', ['customer_id', 'purpose', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('customer_consents', schema=None) as batch_op:
        batch_op.drop_index('ix_customer_consents_current')

    op.drop_table('customer_consents')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_name_id')
        for column in ('version', 'undeliverable_at', 'undeliverable_reason', 'address_undeliverable', 'segment',
                       'paperless', 'channel_preferences', 'locale', 'mobile', 'email', 'country', 'postcode',
                       'region', 'city', 'address_lines', 'title', 'salutation'):
            batch_op.drop_column(column)
