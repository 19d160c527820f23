"""Filtering, faceting, sorting and paging over `search_entries` for the SQL backends (FTS5 and PostgreSQL):
they differ only in how they match text and make snippets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from search._render import safe_snippet
from search.backend import Hit, SearchQuery, SearchResult
from search.models import SearchEntry

TOP_CUSTOMERS = 20
Snippets = Callable[[list[int]], dict[int, str]]


def filters(query: SearchQuery) -> list[ColumnElement[bool]]:
    """The WHERE conditions every query carries: readable types, restriction, customer, dates, metadata."""
    conds: list[ColumnElement[bool]] = [SearchEntry.document_type_id.in_(query.type_ids)]
    if not query.include_restricted:
        conds.append(SearchEntry.restricted.is_(False))
    if query.customer_id is not None:
        conds.append(SearchEntry.customer_id == query.customer_id)
    if query.created_from is not None:
        conds.append(SearchEntry.created_at >= query.created_from)
    if query.created_to is not None:
        conds.append(SearchEntry.created_at < query.created_to)
    for key, value in query.meta.items():
        conds.append(SearchEntry.meta[key].as_string() == value)
    return conds


def _scoped(stmt: Select[Any], query: SearchQuery, matched) -> Select[Any]:  # noqa: ANN001
    if matched is not None:
        stmt = stmt.join(matched, matched.c.rowid == SearchEntry.id)
    return stmt.where(*filters(query))


def _facets(session: Session, query: SearchQuery, matched) -> tuple[int, dict[str, dict[str, int]]]:  # noqa: ANN001
    by_type = dict(session.execute(_scoped(select(SearchEntry.document_type_id, func.count()).select_from(
        SearchEntry), query, matched).group_by(SearchEntry.document_type_id)).all())
    total = sum(by_type.values())
    if not query.facets or not total:
        return total, {"document_type": by_type, "year": {}, "customer": {}} if query.facets else {}
    by_year = {str(y): n for y, n in session.execute(_scoped(select(SearchEntry.year, func.count()).select_from(
        SearchEntry), query, matched).group_by(SearchEntry.year).order_by(SearchEntry.year.desc())).all()}
    count = func.count().label("n")
    by_customer = dict(session.execute(_scoped(select(SearchEntry.customer_id, count).select_from(SearchEntry),
                                               query, matched).where(SearchEntry.customer_id.is_not(None))
                                       .group_by(SearchEntry.customer_id)
                                       .order_by(count.desc(), SearchEntry.customer_id).limit(TOP_CUSTOMERS)).all())
    return total, {"document_type": by_type, "year": by_year, "customer": by_customer}


def run(session: Session, query: SearchQuery, *, matched, score: ColumnElement[float] | None,  # noqa: ANN001
        snippets: Snippets | None) -> SearchResult:
    """Count, facet and page the documents that match (all the filtered ones when `matched` is None)."""
    if not query.type_ids:
        return SearchResult([], 0, {"document_type": {}, "year": {}, "customer": {}} if query.facets else {})
    total, facets = _facets(session, query, matched)
    if not total or query.limit == 0:
        return SearchResult([], total, facets)
    score_col = (score if score is not None else func.cast(0.0, SearchEntry.id.type)).label("score")
    if query.sort == "oldest":
        order = [SearchEntry.created_at.asc(), SearchEntry.document_id.asc()]
    elif query.sort == "newest" or score is None:
        order = [SearchEntry.created_at.desc(), SearchEntry.document_id.desc()]
    else:
        order = [score_col.desc(), SearchEntry.document_id.asc()]
    page = session.execute(_scoped(select(SearchEntry.id, SearchEntry.document_id, SearchEntry.title,
                                          func.substr(SearchEntry.body, 1, 240).label("head"), score_col)
                                   .select_from(SearchEntry), query, matched)
                           .order_by(*order).offset(query.offset).limit(query.limit)).all()
    found = snippets([r.id for r in page]) if snippets is not None else {}
    hits = [Hit(document_id=r.document_id, score=float(r.score or 0.0),
                snippet=found.get(r.id) or safe_snippet(_head(r.head)), title=r.title) for r in page]
    return SearchResult(hits, total, facets)


def _head(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) < 200 else text[:200].rsplit(" ", 1)[0] + " …"


def revisions(session: Session, document_ids: list[str]) -> dict[str, int]:
    """The indexed revision of each given document in search_entries."""
    rows = session.execute(select(SearchEntry.document_id, SearchEntry.revision)
                           .where(SearchEntry.document_id.in_(document_ids))).all()
    return dict(rows)
