"""Full text on PostgreSQL: a tsvector per indexed document in `search_pg` (GIN), 'simple' configuration over
the words as `search.query.words_of` folds them (so accents and case match the other backends)."""

from __future__ import annotations

from sqlalchemy import column, delete, func, literal_column, select, table, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from search import _sql
from search._render import CLOSE, OPEN, safe_snippet, tsquery
from search.backend import IndexDoc, SearchQuery, SearchResult
from search.models import SearchEntry
from search.query import words_of

_PG = table("search_pg", column("entry_id"), column("tsv"))
_HEADLINE = f"StartSel={OPEN}, StopSel={CLOSE}, MaxWords=24, MinWords=8, MaxFragments=1, FragmentDelimiter=…"


class PostgresBackend:
    """tsvector + GIN in the application database; writes commit with the search_entries rows."""

    name = "postgres"
    transactional = True

    def upsert(self, session: Session, docs: list[IndexDoc]) -> None:
        """(Re)compute the tsvector of each document's search_entries row."""
        if not docs:
            return
        ids = dict(session.execute(select(SearchEntry.document_id, SearchEntry.id)
                                   .where(SearchEntry.document_id.in_([d.document_id for d in docs]))).all())
        rows = [{"entry_id": ids[d.document_id], "tsv": func.to_tsvector(
            literal_column("'simple'"), " ".join(words_of(f"{d.title} {d.body}")))} for d in docs
            if d.document_id in ids]
        for row in rows:  # one statement per row: each carries its own to_tsvector call
            stmt = insert(_PG).values(**row)
            session.execute(stmt.on_conflict_do_update(index_elements=["entry_id"], set_={"tsv": stmt.excluded.tsv}))

    def delete(self, session: Session, document_ids: list[str]) -> None:
        """Rows go with their search_entries rows (ON DELETE CASCADE); remove any left explicitly."""
        session.execute(delete(_PG).where(_PG.c.entry_id.in_(
            select(SearchEntry.id).where(SearchEntry.document_id.in_(document_ids)))))

    def search(self, session: Session, query: SearchQuery) -> SearchResult:
        """Match with @@, rank with ts_rank_cd, headline the page's rows only."""
        if query.expr is None:
            return _sql.run(session, query, matched=None, score=None, snippets=None)
        q = func.to_tsquery(literal_column("'simple'"), tsquery(query.expr))
        matched = select(_PG.c.entry_id.label("rowid")).where(_PG.c.tsv.op("@@")(q)).subquery()
        ranked = (select(_PG.c.entry_id.label("rowid"), func.ts_rank_cd(_PG.c.tsv, q).label("rank"))
                  .where(_PG.c.tsv.op("@@")(q)).subquery())

        def snippets(rowids: list[int]) -> dict[int, str]:
            rows = session.execute(select(SearchEntry.id, func.ts_headline(
                literal_column("'simple'"), SearchEntry.body, q, _HEADLINE))
                .where(SearchEntry.id.in_(rowids))).all()
            return {rowid: safe_snippet(raw) for rowid, raw in rows if raw and OPEN in raw}

        return _sql.run(session, query, matched=matched, ranked=ranked, score=ranked.c.rank, snippets=snippets)

    def revisions(self, session: Session, document_ids: list[str]) -> dict[str, int]:
        """The indexed revision per document id."""
        return _sql.revisions(session, document_ids)

    def count(self, session: Session) -> int:
        """How many documents are indexed."""
        return session.execute(select(func.count()).select_from(_PG)).scalar_one()

    def rebuild(self, session: Session) -> _PostgresRebuild:
        """Rebuilding recomputes the vectors in place (one transaction: readers see the old ones until commit)."""
        return _PostgresRebuild(self)


class _PostgresRebuild:
    def __init__(self, backend: PostgresBackend) -> None:
        self.backend = backend

    def upsert(self, session: Session, docs: list[IndexDoc]) -> None:
        """Recompute these documents' vectors."""
        self.backend.upsert(session, docs)

    def commit(self, session: Session) -> None:
        """Drop vectors whose entry is gone."""
        session.execute(text("DELETE FROM search_pg p WHERE NOT EXISTS "
                             "(SELECT 1 FROM search_entries e WHERE e.id = p.entry_id)"))

    def abort(self, session: Session) -> None:
        """Nothing to undo beyond the caller's rollback."""
