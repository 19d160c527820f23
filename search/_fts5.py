"""The embedded backend: SQLite FTS5 over `search_entries` (external content, kept in step by triggers), so
the index commits with the rows it indexes and is rebuilt with one statement.

A query is one FTS5 match: the words over title and body, and the filters as tokens of the `tags` column
(migration 0014), so FTS5 itself narrows the matches before anything is ranked. Facets and date order come from
the in-memory facet columns (`search/_columns.py`); metadata filters, and a query racing a newer snapshot, take
the SQL path over `search_entries` (`search/_sql.py`)."""

from __future__ import annotations

import datetime as dt
import sqlite3

from sqlalchemy import func, literal_column, select, text
from sqlalchemy.orm import Session

from search import _fts5_ranking as _ranking
from search import _sql
from search._columns import KEEP_CHANGES, StaleColumnsError, columns_for
from search._render import CLOSE, OPEN, fts5, safe_snippet
from search.backend import IndexDoc, SearchQuery, SearchResult, TypeScope
from search.models import SearchEntry

_MATCH = literal_column("search_fts")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MAX_YEARS = 12  # a longer date range is checked row by row rather than as year tokens
_SNIPPETS = (f"SELECT rowid, snippet(search_fts, 1, '{OPEN}', '{CLOSE}', '…', 16), "
             f"snippet(search_fts, 0, '{OPEN}', '{CLOSE}', '…', 16) FROM search_fts WHERE search_fts MATCH ? ")


def tag(kind: str, value: str | int) -> str:
    """A filter token as migration 0014 writes it into `tags` (ids hex-encoded, so any id is one token)."""
    return f'"{kind}{value.encode().hex() if isinstance(value, str) else value}"'


class Fts5Backend:
    """SQLite FTS5; writes happen through `search_entries` (the indexer writes the rows, triggers do the rest)."""

    name = "sqlite"
    transactional = True

    def upsert(self, session: Session, docs: list[IndexDoc]) -> None:
        """The triggers on search_entries updated search_fts in the same transaction; trim the change log."""
        session.execute(text("DELETE FROM search_fts_changes WHERE seq <= "
                             "(SELECT max(seq) FROM search_fts_changes) - :keep").bindparams(keep=KEEP_CHANGES))

    def delete(self, session: Session, document_ids: list[str]) -> None:
        """Nothing to do: deleting the search_entries rows removed them from search_fts."""

    def search(self, session: Session, query: SearchQuery) -> SearchResult:
        """Match with FTS5 (filters included), facet from the facet columns, rank by bm25 (title weighted x4)."""
        if query.expr is None or not query.type_ids:
            return _sql.run(session, query, matched=None, score=None, snippets=None)
        match, exact_dates = _match(query)
        if not query.meta:
            try:
                return _search_columns(session, query, match, exact_dates)
            except StaleColumnsError:
                pass
        return _search_sql(session, query, match)

    def revisions(self, session: Session, document_ids: list[str]) -> dict[str, int]:
        """The indexed revision per document id."""
        return _sql.revisions(session, document_ids)

    def count(self, session: Session) -> int:
        """How many documents are indexed."""
        return session.execute(select(func.count()).select_from(SearchEntry)).scalar_one()

    def rebuild(self, session: Session) -> _Fts5Rebuild:
        """FTS5 rebuilds from its content table in one statement; nothing to swap."""
        return _Fts5Rebuild()


def _micros(when: dt.datetime) -> int:
    return (when - _EPOCH) // dt.timedelta(microseconds=1)


def _new_year(when: dt.datetime) -> bool:
    return when == dt.datetime(when.year, 1, 1, tzinfo=dt.UTC)


def _match(query: SearchQuery) -> tuple[str, bool]:
    """The FTS5 expression for the words and the filters, and whether the date range still needs checking row
    by row (it is not whole UTC years, or spans too many of them to list)."""
    assert query.expr is not None
    parts = ["{title body} : " + fts5(query.expr)]
    if query.customer_id is not None:
        parts.append("tags : " + tag("c", query.customer_id))
    scope = TypeScope.of(query)
    if scope.wanted:
        parts.append("tags : (" + " OR ".join(tag("t", t) for t in scope.wanted) + ")")
    exact_dates = query.created_from is not None or query.created_to is not None
    start = query.created_from.astimezone(dt.UTC) if query.created_from else None
    end = query.created_to.astimezone(dt.UTC) if query.created_to else None
    if start is not None and end is not None and start < end:
        last = (end - dt.timedelta(microseconds=1)).year
        if last - start.year < _MAX_YEARS:
            parts.append("tags : (" + " OR ".join(tag("y", y) for y in range(start.year, last + 1)) + ")")
            exact_dates = not (_new_year(start) and _new_year(end))
    expr = " AND ".join(parts)
    excluded = [tag("t", t) for t in scope.others]
    if not query.include_restricted:
        excluded.append(tag("r", 1))
    if excluded:
        expr = f"({expr}) NOT tags : (" + " OR ".join(excluded) + ")"
    return expr, exact_dates


def _search_columns(session: Session, query: SearchQuery, match: str, exact_dates: bool) -> SearchResult:
    """Total and facets over every match from the facet columns; the page from FTS5's own ranking (or from the
    columns' creation times for date order)."""
    conn: sqlite3.Connection = session.connection().connection.driver_connection
    url = session.get_bind().url
    columns = columns_for(str(url))
    seq = columns.sync(conn)
    need = query.offset + query.limit
    if query.sort == "relevance" and not exact_dates:
        middle = (columns.split(seq, _ranking.HELPER_SHARE) if columns.entries(seq) >= _ranking.SPLIT_AT
                  else None)
        rowids, ranked = _ranking.matches_and_best(conn, url.database, seq, match, middle, need)
    else:
        rowids, ranked = _ranking.matches(conn, match), None
    if exact_dates:
        matched = len(rowids)
        rowids = columns.created_between(seq, rowids, query.created_from and _micros(query.created_from),
                                         query.created_to and _micros(query.created_to))
        if query.sort == "relevance":  # rank what the dates kept
            ranked = (_ranking.best(conn, match, rowids, need) if len(rowids) == matched
                      else _ranking.best_among(conn, match, set(rowids.tolist()), need))
    facets = columns.facets(seq, rowids, _sql.TOP_CUSTOMERS) if query.facets else {}
    total = len(rowids)
    if not total or query.limit == 0:
        return SearchResult([], total, facets)
    if ranked is not None:
        page = ranked[query.offset:need]
    else:
        chosen = columns.newest(seq, rowids, need, oldest=query.sort == "oldest")[query.offset:]
        page = [(rowid, 0.0) for rowid in chosen]
    # The filters once more: whatever a page holds must pass them in this transaction (as `+column`, so SQLite
    # looks the page's rows up by id rather than walking an index of every document of a type).
    rows = {r.id: r for r in session.execute(select(SearchEntry.id, SearchEntry.document_id, SearchEntry.title)
                                             .where(SearchEntry.id.in_([p[0] for p in page]),
                                                    *_sql.filters(query, matched=True)))}
    return _sql.hits(session, [(rowid, rows[rowid].document_id, rows[rowid].title, score)
                               for rowid, score in page if rowid in rows],
                     lambda ids: _snippets(conn, match, ids), total, facets)


def _snippets(conn: sqlite3.Connection, match: str, rowids: list[int]) -> dict[int, str]:
    """A snippet of the body where the words matched it, else of the title (never of the filter tokens)."""
    if not rowids:
        return {}
    marks = ", ".join("?" * len(rowids))
    if "*" in match:
        # One pass over the matches in the page's rowid range: with `rowid IN` handed to FTS5 it would look the
        # page's rows up one by one, expanding the prefix again each time (milliseconds each).
        rows = conn.execute(_SNIPPETS + f"AND rowid BETWEEN ? AND ? AND +rowid IN ({marks})",
                            (match, min(rowids), max(rowids), *rowids))
    else:  # a lookup per row: cheaper than passing every match in the range
        rows = conn.execute(_SNIPPETS + f"AND rowid IN ({marks})", (match, *rowids))
    return {rowid: safe_snippet(body if OPEN in (body or "") or OPEN not in (title or "") else title)
            for rowid, body, title in rows}


def _search_sql(session: Session, query: SearchQuery, match: str) -> SearchResult:
    """Filter, facet and rank through search_entries in SQL (metadata filters)."""
    where = text("search_fts MATCH :match").bindparams(match=match)
    matched = select(literal_column("rowid").label("rowid")).select_from(text("search_fts")).where(where).subquery()
    ranked = (select(literal_column("rowid").label("rowid"), func.bm25(_MATCH, *_ranking.WEIGHTS).label("rank"))
              .select_from(text("search_fts")).where(where).subquery())
    conn: sqlite3.Connection = session.connection().connection.driver_connection
    return _sql.run(session, query, matched=matched, ranked=ranked, score=-ranked.c.rank,
                    snippets=lambda ids: _snippets(conn, match, ids), plain=True, one_pass=True,
                    ties_by_entry=True)


class _Fts5Rebuild:
    def upsert(self, session: Session, docs: list[IndexDoc]) -> None:
        """The rows are already in search_entries."""

    def commit(self, session: Session) -> None:
        """Rebuild the FTS5 index from search_entries (in the caller's transaction)."""
        session.execute(text("INSERT INTO search_fts(search_fts) VALUES ('rebuild')"))

    def abort(self, session: Session) -> None:
        """Nothing was changed."""
