"""search (SQLite): the FTS5 index gains a `tags` column (type, year, restriction and customer as tokens, so
filters are part of the full-text match) and a change log of search_entries (every insert, delete and change of
an indexed or facet field) that in-process facet columns and the ranking helper check against

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _tags(row: str) -> str:
    # Hex keeps any id one token; search._fts5.tag builds the same tokens for queries.
    return (f"'t' || hex({row}.document_type_id) || ' y' || {row}.year || ' r' || {row}.restricted"
            f" || coalesce(' c' || hex({row}.customer_id), '')")


_INDEXED = ("title", "body", "document_type_id", "year", "restricted", "customer_id")
_LOGGED = (*_INDEXED, "created_at")


def _changed(columns: tuple[str, ...]) -> str:
    # UPDATE OF fires for every column in the SET list, changed or not; the indexer sets them all.
    return " OR ".join(f"old.{c} IS NOT new.{c}" for c in columns)


_OBJECTS = [
    f"""CREATE VIEW search_fts_source AS
          SELECT id, title, body, {_tags('search_entries')} AS tags FROM search_entries""",
    """CREATE VIRTUAL TABLE search_fts USING fts5(title, body, tags, content='search_fts_source',
         content_rowid='id', tokenize='unicode61 remove_diacritics 2', prefix='2 3')""",
    """CREATE TABLE search_fts_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, entry_id INTEGER NOT NULL)""",
    f"""CREATE TRIGGER search_entries_ai AFTER INSERT ON search_entries BEGIN
         INSERT INTO search_fts(rowid, title, body, tags) VALUES (new.id, new.title, new.body, {_tags('new')});
         INSERT INTO search_fts_changes(entry_id) VALUES (new.id);
       END""",
    f"""CREATE TRIGGER search_entries_ad AFTER DELETE ON search_entries BEGIN
         INSERT INTO search_fts(search_fts, rowid, title, body, tags)
           VALUES ('delete', old.id, old.title, old.body, {_tags('old')});
         INSERT INTO search_fts_changes(entry_id) VALUES (old.id);
       END""",
    f"""CREATE TRIGGER search_entries_au AFTER UPDATE OF {', '.join(_INDEXED)} ON search_entries
       WHEN {_changed(_INDEXED)} BEGIN
         INSERT INTO search_fts(search_fts, rowid, title, body, tags)
           VALUES ('delete', old.id, old.title, old.body, {_tags('old')});
         INSERT INTO search_fts(rowid, title, body, tags) VALUES (new.id, new.title, new.body, {_tags('new')});
       END""",
    f"""CREATE TRIGGER search_entries_logged AFTER UPDATE OF {', '.join(_LOGGED)} ON search_entries
       WHEN {_changed(_LOGGED)} BEGIN
         INSERT INTO search_fts_changes(entry_id) VALUES (new.id);
       END""",
]

_V0010 = [
    """CREATE VIRTUAL TABLE search_fts USING fts5(title, body, content='search_entries', content_rowid='id',
         tokenize='unicode61 remove_diacritics 2', prefix='2 3')""",
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


def _drop() -> None:
    for name in ("search_entries_ai", "search_entries_ad", "search_entries_au", "search_entries_logged"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS search_fts")
    op.execute("DROP TABLE IF EXISTS search_fts_changes")
    op.execute("DROP VIEW IF EXISTS search_fts_source")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _drop()
    for statement in _OBJECTS:
        op.execute(statement)
    op.execute("INSERT INTO search_fts(search_fts) VALUES ('rebuild')")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _drop()
    for statement in _V0010:
        op.execute(statement)
    op.execute("INSERT INTO search_fts(search_fts) VALUES ('rebuild')")
