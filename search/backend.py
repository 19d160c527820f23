"""The search backend interface, the shapes that cross it, and the choice of backend by settings
(`POSTROOM_SEARCH_BACKEND`: sqlite FTS5 in the embedded database, postgres full text, or elasticsearch)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session

from search.query import Node

MAX_DEPTH = 10_000  # results beyond this many are not paged (as in Elasticsearch's default window)


@dataclass(frozen=True)
class IndexDoc:
    """What the index holds for one document (its current version's text and its metadata)."""

    document_id: str
    revision: int  # the document's revision when indexed (search verify compares it)
    title: str
    body: str
    document_type_id: str
    document_type: str
    customer_id: str | None
    created_at: dt.datetime
    metadata: dict[str, Any]
    text_status: str
    restricted: bool = False
    version: str = "1.0"


@dataclass(frozen=True)
class SearchQuery:
    """A parsed query with its filters; `type_ids` is already the caller's readable types (access control)."""

    expr: Node | None
    type_ids: list[str]
    all_type_ids: frozenset[str] | None = None  # every type there is, when known: see TypeScope
    include_restricted: bool = False
    customer_id: str | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None
    meta: dict[str, str] = field(default_factory=dict)
    sort: str = "relevance"  # relevance | newest | oldest
    offset: int = 0
    limit: int = 20
    facets: bool = True


@dataclass(frozen=True)
class Hit:
    """One matching document: its id, score and a snippet with matches in <mark>…</mark>."""

    document_id: str
    score: float
    snippet: str
    title: str
    text_status: str = "ok"  # filled from the database for the page shown (search.service)
    text_error: str | None = None


@dataclass(frozen=True)
class TypeScope:
    """How a backend limits a query to its readable types: require `wanted`, or exclude `others`, whichever
    lists fewer types; neither when every known type is readable (the clause would match everything)."""

    wanted: list[str]
    others: list[str]

    @classmethod
    def of(cls, query: SearchQuery) -> TypeScope:
        """The scope for a query (the readable types listed when the query does not know every type)."""
        readable = set(query.type_ids)
        if query.all_type_ids is None:
            return cls(sorted(readable), [])
        others = sorted(query.all_type_ids - readable)
        if not others:
            return cls([], [])
        return cls(sorted(readable), []) if len(readable) <= len(others) else cls([], others)


@dataclass
class SearchResult:
    """A page of hits, the total, and facet counts (document type id, year, customer id → count)."""

    hits: list[Hit]
    total: int
    facets: dict[str, dict[str, int]] = field(default_factory=dict)


class SearchBackend(Protocol):
    """An index of documents; every method is idempotent. `session` is the caller's transaction (the FTS5 and
    PostgreSQL backends write in it, so the index changes commit with the outbox delivery mark)."""

    name: str

    def upsert(self, session: Session, docs: list[IndexDoc]) -> None:
        """Add or replace documents."""

    def delete(self, session: Session, document_ids: list[str]) -> None:
        """Remove documents (no error for absent ones)."""

    def search(self, session: Session, query: SearchQuery) -> SearchResult:
        """Run a query."""

    def revisions(self, session: Session, document_ids: list[str]) -> dict[str, int]:
        """The indexed revision of each of these documents that is in the index."""

    def count(self, session: Session) -> int:
        """How many documents the index holds."""

    def rebuild(self, session: Session) -> Rebuild:
        """Start building a fresh index beside the live one (reindex without downtime)."""


class Rebuild(Protocol):
    """A fresh index being filled; the live one keeps answering until `commit` swaps it in."""

    def upsert(self, session: Session, docs: list[IndexDoc]) -> None:
        """Add documents to the new index."""

    def commit(self, session: Session) -> None:
        """Make the new index the live one."""

    def abort(self, session: Session) -> None:
        """Drop the new index."""


_backends: dict[str, SearchBackend] = {}


def get_backend() -> SearchBackend:
    """The configured backend (one per process and setting)."""
    from repository.config import get_settings
    from repository.db import get_engine

    settings = get_settings()
    name = settings.search_backend
    if name == "auto":
        name = "postgres" if get_engine().dialect.name == "postgresql" else "sqlite"
    key = f"{name}:{settings.resolved_database_url}:{settings.elasticsearch_url}:{settings.elasticsearch_index}"
    if key not in _backends:
        _backends[key] = _make(name, settings)
    return _backends[key]


def _make(name: str, settings) -> SearchBackend:  # noqa: ANN001
    if name == "sqlite":
        from search._fts5 import Fts5Backend

        return Fts5Backend()
    if name == "postgres":
        from search._postgres import PostgresBackend

        return PostgresBackend()
    if name == "elasticsearch":
        from search._elastic import ElasticBackend

        return ElasticBackend(settings)
    raise ValueError(f"unknown search backend {name!r}")


def reset_backends() -> None:
    """Forget the backends made so far (tests, settings changes)."""
    for backend in _backends.values():
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    _backends.clear()
