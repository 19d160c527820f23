"""search: index source table, indexing queue; FTS5 (SQLite) or tsvector (PostgreSQL) index

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_FTS_TRIGGERS = [
    """CREATE TRIGGER search_entries_ai AFTER INSERT ON search_entries BEGIN
         INSERT INTO search_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
       END""",
    """CREATE TRIGGER search_entries_ad AFTER DELETE ON search_entries BEGIN
         INSERT INTO search_fts(search_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
       END""",
    """CREATE TRIGGER search_entries_au AFTER UPDATE OF title, body ON search_entries BEGIN
         INSERT INTO search_fts(search_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
         INSERT INTO search_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
       END""",
]


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "search_entries",
        sa.Column("id", big_id, nullable=False, autoincrement=True),
        sa.Column("document_id", sa.String(36), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(20), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("document_type_id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.String(36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("restricted", sa.Boolean(), nullable=False),
        sa.Column("metadata", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("text_status", sa.String(20), nullable=False),
        sa.Column("text_error", sa.String(500), nullable=True),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=False),
        # Last, so reading the columns queries filter on never walks a long text's overflow pages.
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], name="fk_search_entries_document_id_documents"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_entries")),
        sa.UniqueConstraint("document_id", name=op.f("uq_search_entries_document_id")),
    )
    op.create_index("ix_search_entries_type_created", "search_entries", ["document_type_id", "created_at"])
    op.create_index("ix_search_entries_customer_id", "search_entries", ["customer_id"])
    op.create_table(
        "search_queue",
        sa.Column("document_id", sa.String(36), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("document_id", name=op.f("pk_search_queue")),
    )
    op.create_index("ix_search_queue_due", "search_queue", ["next_attempt_at"])
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE search_fts USING fts5(title, body, content='search_entries', "
                   "content_rowid='id', tokenize='unicode61 remove_diacritics 2', prefix='2 3')")
        for trigger in _FTS_TRIGGERS:
            op.execute(trigger)
    else:
        op.execute("CREATE TABLE search_pg (entry_id BIGINT PRIMARY KEY REFERENCES search_entries (id) "
                   "ON DELETE CASCADE, tsv TSVECTOR NOT NULL)")
        op.execute("CREATE INDEX ix_search_pg_tsv ON search_pg USING GIN (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("search_entries_ai", "search_entries_ad", "search_entries_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    else:
        op.execute("DROP TABLE IF EXISTS search_pg")
    op.drop_table("search_queue")
    op.drop_table("search_entries")
