"""working copies of checked-out documents (WebDAV PUT); folders for /dav/files; WebDAV locks and dead properties

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ROOT_FOLDER_ID = "00000000-0000-0000-0000-000000000000"
ACTIVE_IN_FOLDER = "state = 'active' AND folder_id IS NOT NULL"


def upgrade() -> None:
    op.create_table('folders',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('parent_id', sa.String(length=36), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('created_by', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_folders_created_by_users')),
    sa.ForeignKeyConstraint(['parent_id'], ['folders.id'], name=op.f('fk_folders_parent_id_folders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_folders')),
    sa.UniqueConstraint('parent_id', 'name', name='uq_folders_parent_name')
    )
    with op.batch_alter_table('folders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_folders_parent_id'), ['parent_id'], unique=False)

    # The root of the tree (/dav/files/): every other folder has a parent, so the unique (parent_id, name)
    # constraint holds for all of them (NULLs would not be compared).
    folders = sa.table("folders", sa.column("id"), sa.column("parent_id"), sa.column("name"),
                       sa.column("created_by"), sa.column("created_at", sa.DateTime(timezone=True)))
    op.bulk_insert(folders, [{"id": ROOT_FOLDER_ID, "parent_id": None, "name": "", "created_by": None,
                              "created_at": datetime.datetime.now(datetime.UTC)}])

    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('folder_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('working_blob_key', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('working_sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('working_size', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('working_media_type', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('working_filename', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('working_saved_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_documents_folder_id_folders'), 'folders', ['folder_id'], ['id'])
        batch_op.create_index(batch_op.f('ix_documents_folder_id'), ['folder_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_documents_working_blob_key'), ['working_blob_key'], unique=False)
        batch_op.create_index('uq_documents_folder_title', ['folder_id', 'title'], unique=True,
                              sqlite_where=sa.text(ACTIVE_IN_FOLDER), postgresql_where=sa.text(ACTIVE_IN_FOLDER))

    op.create_table('dav_locks',
    sa.Column('token', sa.String(length=100), nullable=False),
    sa.Column('root', sa.String(length=2000), nullable=False),
    sa.Column('principal', sa.String(length=150), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.Column('depth', sa.String(length=20), nullable=False),
    sa.Column('owner', sa.LargeBinary(), nullable=False),
    sa.Column('timeout', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('document_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_dav_locks_document_id_documents')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_dav_locks_user_id_users')),
    sa.PrimaryKeyConstraint('token', name=op.f('pk_dav_locks'))
    )
    with op.batch_alter_table('dav_locks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dav_locks_root'), ['root'], unique=False)
        batch_op.create_index(batch_op.f('ix_dav_locks_document_id'), ['document_id'], unique=False)

    op.create_table('dav_properties',
    sa.Column('resource', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=1000), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('resource', 'name', name=op.f('pk_dav_properties'))
    )


def downgrade() -> None:
    op.drop_table('dav_properties')
    with op.batch_alter_table('dav_locks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dav_locks_document_id'))
        batch_op.drop_index(batch_op.f('ix_dav_locks_root'))
    op.drop_table('dav_locks')
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index('uq_documents_folder_title')
        batch_op.drop_index(batch_op.f('ix_documents_working_blob_key'))
        batch_op.drop_index(batch_op.f('ix_documents_folder_id'))
        batch_op.drop_constraint(batch_op.f('fk_documents_folder_id_folders'), type_='foreignkey')
        batch_op.drop_column('working_saved_at')
        batch_op.drop_column('working_filename')
        batch_op.drop_column('working_media_type')
        batch_op.drop_column('working_size')
        batch_op.drop_column('working_sha256')
        batch_op.drop_column('working_blob_key')
        batch_op.drop_column('folder_id')
    with op.batch_alter_table('folders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_folders_parent_id'))
    op.drop_table('folders')
