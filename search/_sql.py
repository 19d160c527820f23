"""Filtering, faceting, sorting and paging over `search_entries` for the SQL backends (FTS5 and PostgreSQL):
they differ only in how they match text and make snippets."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from search._render import safe_snippet
from search.backend import Hit, SearchQuery, SearchResult
from search.metadata import meta_equals
from search.models import SearchEntry

TOP_CUSTOMERS = 20
Snippets = Callable[[list[int]], dict[int, str]]


def _plain(column, matched):  # noqa: ANN001, ANN202
    """The column as SQLite's `+column` when text matched: an expression no index serves, so the planner scans
    the full-text matches first and looks rows up by id, instead of walking an index of every document and
    probing the full-text index once per row (seconds instead of milliseconds on a large index)."""
    if matched is None:
        return column
    return UnaryExpression(column, operator=custom_op("+"), type_=column.type)


def filters(query: SearchQuery, matched=None) -> list[ColumnElement[bool]]:  # noqa: ANN001
    """The WHERE conditions every query carries: readable types, restriction, customer, dates, metadata."""
    created = _plain(SearchEntry.created_at, matched)
    conds: list[ColumnElement[bool]] = [_plain(SearchEntry.document_type_id, matched).in_(query.type_ids)]
    if not query.include_restricted:
        conds.append(SearchEntry.restricted.is_(False))
    if query.customer_id is not None:
        conds.append(SearchEntry.customer_id == query.customer_id)
    if query.created_from is not None:
        conds.append(created >= query.created_from)
    if query.created_to is not None:
        conds.append(created < query.created_to)
    conds += [meta_equals(SearchEntry.meta, key, value) for key, value in query.meta.items()]
    return conds


def _scoped(stmt: Select[Any], query: SearchQuery, matched, plain: bool = False) -> Select[Any]:  # noqa: ANN001
    if matched is not None:
        stmt = stmt.join(matched, matched.c.rowid == SearchEntry.id)
    return stmt.where(*filters(query, matched if plain else None))


def _facets(session: Session, query: SearchQuery, matched,  # noqa: ANN001
            plain: bool) -> tuple[int, dict[str, dict[str, int]]]:
    """The total and the facet counts: type and year in one grouped pass, the top customers in another."""
    type_col = _plain(SearchEntry.document_type_id, matched) if plain else SearchEntry.document_type_id
    year_col = _plain(SearchEntry.year, matched) if plain else SearchEntry.year
    pairs = session.execute(_scoped(select(type_col, year_col, func.count()).select_from(SearchEntry), query,
                                    matched, plain).group_by(type_col, year_col)).all()
    by_type: dict[str, int] = {}
    by_year: dict[str, int] = {}
    for type_id, year, n in pairs:
        by_type[type_id] = by_type.get(type_id, 0) + n
        by_year[str(year)] = by_year.get(str(year), 0) + n
    total = sum(by_type.values())
    if not query.facets:
        return total, {}
    by_customer: dict[str, int] = {}
    if total:
        customer_col = _plain(SearchEntry.customer_id, matched) if plain else SearchEntry.customer_id
        count = func.count().label("n")
        by_customer = dict(session.execute(
            _scoped(select(customer_col, count).select_from(SearchEntry), query, matched, plain)
            .where(customer_col.is_not(None)).group_by(customer_col)
            .order_by(count.desc(), customer_col).limit(TOP_CUSTOMERS)).all())
    return total, {"document_type": by_type, "year": dict(sorted(by_year.items(), reverse=True)),
                   "customer": by_customer}


def _one_pass(session: Session, query: SearchQuery, ranked, score: ColumnElement[float],  # noqa: ANN001
              plain: bool, by_id: bool) -> tuple[int, dict[str, dict[str, int]], list[Any] | None]:
    """Total, facets and (for relevance order) the best `offset + limit` matches in ONE streamed pass over the
    matches: on SQLite each further pass costs a row lookup per match, which dominates large result sets."""
    cols = [_plain(c, ranked) if plain else c for c in
            (SearchEntry.document_type_id, SearchEntry.year, SearchEntry.customer_id)]
    stmt = _scoped(select(SearchEntry.id, SearchEntry.document_id, *cols, score.label("score"))
                   .select_from(SearchEntry), query, ranked, plain)
    by_type: Counter[str] = Counter()
    by_year: Counter[str] = Counter()
    by_customer: Counter[str] = Counter()

    def rows() -> Iterator[Any]:
        for row in session.execute(stmt).yield_per(5000):
            by_type[row[2]] += 1
            by_year[row[3]] += 1
            if row[4] is not None:
                by_customer[row[4]] += 1
            yield row

    if query.sort == "relevance":
        tie = 0 if by_id else 1
        top = heapq.nsmallest(query.offset + query.limit, rows(), key=lambda r: (-(r[5] or 0.0), r[tie]))
    else:
        top = None
        for _ in rows():
            pass
    total = sum(by_type.values())
    if not query.facets:
        return total, {}, top
    customers = dict(sorted(by_customer.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CUSTOMERS])
    years = {str(y): n for y, n in sorted(by_year.items(), reverse=True)}
    return total, {"document_type": dict(by_type), "year": years, "customer": customers}, top


def run(session: Session, query: SearchQuery, *, matched, score: ColumnElement[float] | None,  # noqa: ANN001
        snippets: Snippets | None, plain: bool = False, ranked=None,  # noqa: ANN001
        one_pass: bool = False, ties_by_entry: bool = False) -> SearchResult:
    """Count, facet and page the documents that match (all the filtered ones when `matched` is None). `ranked`
    (the matches with their score, used for the page only) defaults to `matched`; `plain` (SQLite) keeps the
    planner from driving the join from an index of every document; `one_pass` computes total, facets and a
    relevance page in a single streamed pass; `ties_by_entry` orders equal scores and times by entry id (as
    FTS5's fast path does) instead of document id."""
    ranked = matched if ranked is None else ranked
    if not query.type_ids:
        return SearchResult([], 0, {"document_type": {}, "year": {}, "customer": {}} if query.facets else {})
    top = None
    if one_pass and score is not None:
        total, facets, top = _one_pass(session, query, ranked, score, plain, ties_by_entry)
    else:
        total, facets = _facets(session, query, matched, plain)
    if not total or query.limit == 0:
        return SearchResult([], total, facets)
    if top is not None:
        chosen = top[query.offset:query.offset + query.limit]
        titles = dict(session.execute(select(SearchEntry.id, SearchEntry.title)
                                      .where(SearchEntry.id.in_([r[0] for r in chosen]))).all())
        return hits(session, [(r[0], r[1], titles.get(r[0], ""), r[5]) for r in chosen], snippets, total, facets)
    score_col = (score if score is not None else func.cast(0.0, SearchEntry.id.type)).label("score")
    created = _plain(SearchEntry.created_at, matched) if plain else SearchEntry.created_at
    tie = SearchEntry.id if ties_by_entry else SearchEntry.document_id
    if query.sort == "oldest":
        order = [created.asc(), tie.asc()]
    elif query.sort == "newest" or score is None:
        order = [created.desc(), tie.desc()]
    else:
        order = [score_col.desc(), tie.asc()]
    page = session.execute(_scoped(select(SearchEntry.id, SearchEntry.document_id, SearchEntry.title,
                                          score_col).select_from(SearchEntry), query, ranked, plain)
                           .order_by(*order).offset(query.offset).limit(query.limit)).all()
    return hits(session, [tuple(r) for r in page], snippets, total, facets)


def hits(session: Session, page: list[tuple[int, str, str, float | None]], snippets: Snippets | None,
          total: int, facets: dict[str, dict[str, int]]) -> SearchResult:
    """The page's hits with snippets (a leading excerpt where the backend made none)."""
    ids = [row[0] for row in page]
    found = snippets(ids) if snippets is not None else {}
    heads = {} if len(found) == len(page) else dict(session.execute(
        select(SearchEntry.id, func.substr(SearchEntry.body, 1, 240))
        .where(SearchEntry.id.in_([i for i in ids if i not in found]))).all())
    hits = [Hit(document_id=document_id, score=float(score or 0.0),
                snippet=found.get(entry_id) or safe_snippet(_head(heads.get(entry_id))), title=title)
            for entry_id, document_id, title, score in page]
    return SearchResult(hits, total, facets)


def _head(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) < 200 else text[:200].rsplit(" ", 1)[0] + " …"


def revisions(session: Session, document_ids: list[str]) -> dict[str, int]:
    """The indexed revision of each given document in search_entries."""
    rows = session.execute(select(SearchEntry.document_id, SearchEntry.revision)
                           .where(SearchEntry.document_id.in_(document_ids))).all()
    return dict(rows)
