"""The embedded backend: SQLite FTS5 over `search_entries` (external content, kept in step by triggers), so
the index commits with the rows it indexes and is rebuilt with one statement."""

from __future__ import annotations

from sqlalchemy import func, literal_column, select, text
from sqlalchemy.orm import Session

from search import _sql
from search._render import CLOSE, OPEN, fts5, safe_snippet
from search.backend import IndexDoc, SearchQuery, SearchResult
from search.models import SearchEntry

_MATCH = literal_column("search_fts")


class Fts5Backend:
    """SQLite FTS5; writes happen through `search_entries` (the indexer writes the rows, triggers do the rest)."""

    name = "sqlite"
    transactional = True

    def upsert(self, session: Session, docs: list[IndexDoc]) -> None:
        """Nothing to do: the triggers on search_entries updated search_fts in the same transaction."""

    def delete(self, session: Session, document_ids: list[str]) -> None:
        """Nothing to do: deleting the search_entries rows removed them from search_fts."""

    def search(self, session: Session, query: SearchQuery) -> SearchResult:
        """Match with FTS5, filter and facet through search_entries, rank by bm25 (title weighted x4)."""
        if query.expr is None:
            return _sql.run(session, query, matched=None, score=None, snippets=None)
        match = fts5(query.expr)
        where = text("search_fts MATCH :match").bindparams(match=match)
        matched = select(literal_column("rowid").label("rowid")).select_from(text("search_fts")).where(where).subquery()
        ranked = (select(literal_column("rowid").label("rowid"), func.bm25(_MATCH, 4.0, 1.0).label("rank"))
                  .select_from(text("search_fts")).where(where).subquery())

        def snippets(rowids: list[int]) -> dict[int, str]:
            # Auxiliary functions run only in a MATCH query, so snippets are made for the page's rows alone.
            rows = session.execute(
                select(literal_column("rowid"), func.snippet(_MATCH, -1, OPEN, CLOSE, "…", 16))
                .select_from(text("search_fts")).where(text("search_fts MATCH :match").bindparams(match=match))
                .where(literal_column("rowid").in_(rowids))).all()
            return {rowid: safe_snippet(raw) for rowid, raw in rows}

        return _sql.run(session, query, matched=matched, ranked=ranked, score=-ranked.c.rank, snippets=snippets,
                        plain=True, one_pass=True)

    def revisions(self, session: Session, document_ids: list[str]) -> dict[str, int]:
        """The indexed revision per document id."""
        return _sql.revisions(session, document_ids)

    def count(self, session: Session) -> int:
        """How many documents are indexed."""
        return session.execute(select(func.count()).select_from(SearchEntry)).scalar_one()

    def rebuild(self, session: Session) -> _Fts5Rebuild:
        """FTS5 rebuilds from its content table in one statement; nothing to swap."""
        return _Fts5Rebuild()


class _Fts5Rebuild:
    def upsert(self, session: Session, docs: list[IndexDoc]) -> None:
        """The rows are already in search_entries."""

    def commit(self, session: Session) -> None:
        """Rebuild the FTS5 index from search_entries (in the caller's transaction)."""
        session.execute(text("INSERT INTO search_fts(search_fts) VALUES ('rebuild')"))

    def abort(self, session: Session) -> None:
        """Nothing was changed."""
