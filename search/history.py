"""A customer's history for the help desk: documents, letters, delivery events (and, once the complaints issue
adds them, complaints) on one timeline, newest first, read from `search_timeline` (kept by search.timeline.feed).

Decisions:
- Whoever may read the customer (every staff member, repository.service.customers) may ask; an unknown customer
  is a 404. Entries about a document the caller may not read (its type's read roles, restricted, destroyed) are
  left out; a document's own entry also leaves while it is in the trash (as it leaves listings and search), but a
  letter and its delivery events stay: the letter was sent. Entries without a document (none yet; complaints
  may add some) are shown to everyone who may read the customer.
- `q` is the search query language. Documents and letters match through the search index (their text and title,
  as /search finds them; the newest MAX_DEPTH matches of the customer); delivery events match on the words of
  their kind, channel and detail.
- Keyset paging on (at, id), so a page never repeats or skips an entry when new ones arrive."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, not_, or_, select
from sqlalchemy.orm import Session

from repository.access import can_read, can_see_restricted
from repository.errors import InvalidInputError
from repository.models import Document, DocumentType, User
from repository.service.customers import get_customer
from repository.service.documents import decode_cursor
from search import query as ql
from search.backend import MAX_DEPTH, SearchQuery, get_backend
from search.errors import SearchUnavailableError
from search.service import check_window
from search.timeline.models import KINDS, TimelineEntry

INDEXED_KINDS = ("document", "letter")  # matched by `q` through the search index


@dataclass(frozen=True)
class HistoryItem:
    """One thing that happened to the customer."""

    id: int
    at: dt.datetime
    kind: str
    subject_type: str
    subject_id: str
    document_id: str | None
    title: str
    summary: str
    channel: str | None
    state: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class HistoryPage:
    """A page of the timeline, newest first, and the cursor for the next page (None on the last)."""

    items: list[HistoryItem]
    next_cursor: str | None


def _encode(entry: TimelineEntry) -> str:
    raw = json.dumps([entry.at.isoformat(), str(entry.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[dt.datetime, int]:
    try:
        at, last = decode_cursor(cursor)
        return at, int(last)
    except (InvalidInputError, ValueError) as exc:
        raise InvalidInputError("the cursor is not valid; use the next_cursor of a previous page",
                                field="cursor") from exc


def _check(kinds: Sequence[str] | None, limit: int, at_from: dt.datetime | None, at_to: dt.datetime | None) -> None:
    unknown = sorted(set(kinds or ()) - set(KINDS))
    if unknown:
        raise InvalidInputError(f"kind must be one of {', '.join(KINDS)}; not {', '.join(unknown)}", field="kind")
    check_window(limit, at_from, at_to)


def _visible(actor: User, type_ids: list[str]) -> ColumnElement[bool]:
    """Entries about documents the actor may read (a document in the trash shows only its letter's entries)."""
    readable = [Document.document_type_id.in_(type_ids), Document.state != "destroyed",
                or_(TimelineEntry.kind != "document", Document.state == "active")]
    if not can_see_restricted(actor):
        readable.append(Document.restricted.is_(False))
    return or_(TimelineEntry.document_id.is_(None), and_(Document.id.is_not(None), *readable))


def terms_match(node: ql.Node) -> ColumnElement[bool]:
    """The query tree as conditions on `terms` (" w1 w2 ... "): a word whole, a prefix at a word's start, a
    phrase as its words in a row. Words hold only letters and digits, so they carry no LIKE wildcards."""
    if isinstance(node, ql.Term):
        return TimelineEntry.terms.like(f"% {node.text}{'%' if node.prefix else ' %'}")
    if isinstance(node, ql.Phrase):
        return TimelineEntry.terms.like(f"% {' '.join(node.words)} %")
    if isinstance(node, ql.Not):
        return not_(terms_match(node.part))
    parts = [terms_match(p) for p in node.parts]
    return and_(*parts) if isinstance(node, ql.And) else or_(*parts)


def _indexed_matches(session: Session, actor: User, customer_id: str, expr: ql.Node,
                     type_ids: list[str], every_type: frozenset[str]) -> list[str]:
    """The customer's documents (letters included) the search index finds for the query."""
    if not type_ids:
        return []
    query = SearchQuery(expr=expr, type_ids=type_ids, all_type_ids=every_type,
                        include_restricted=can_see_restricted(actor),
                        customer_id=customer_id, sort="newest", offset=0, limit=MAX_DEPTH, facets=False)
    try:
        result = get_backend().search(session, query)
    except ConnectionError as exc:
        raise SearchUnavailableError("search is unavailable right now; retry shortly", retry_after=5) from exc
    return [h.document_id for h in result.hits]


def _text_filter(session: Session, actor: User, customer_id: str, expr: ql.Node,
                 type_ids: list[str], every_type: frozenset[str], kinds: Sequence[str]) -> ColumnElement[bool]:
    conds = []
    if set(kinds) & set(INDEXED_KINDS):
        ids = _indexed_matches(session, actor, customer_id, expr, type_ids, every_type)
        conds.append(and_(TimelineEntry.kind.in_(INDEXED_KINDS), TimelineEntry.document_id.in_(ids))
                     if ids else false())
    if set(kinds) - set(INDEXED_KINDS):
        conds.append(and_(TimelineEntry.kind.not_in(INDEXED_KINDS), terms_match(expr)))
    return or_(*conds)


def customer_history(session: Session, *, actor: User, customer_id: str, kinds: Sequence[str] | None = None,
                     q: str | None = None, at_from: dt.datetime | None = None, at_to: dt.datetime | None = None,
                     cursor: str | None = None, limit: int = 50) -> HistoryPage:
    """The customer's timeline as the actor may see it, newest first, filtered by kinds, text and time
    (from inclusive, to exclusive). NotFoundError for an unknown customer; QuerySyntaxError for a bad query."""
    _check(kinds, limit, at_from, at_to)
    expr = ql.parse(q)
    get_customer(session, customer_id=customer_id)
    kinds = sorted(set(kinds)) if kinds else list(KINDS)
    types = list(session.execute(select(DocumentType)).scalars())
    type_ids = [t.id for t in types if can_read(actor, t)]
    stmt = (select(TimelineEntry).outerjoin(Document, Document.id == TimelineEntry.document_id)
            .where(TimelineEntry.customer_id == customer_id, TimelineEntry.kind.in_(kinds),
                   _visible(actor, type_ids)))
    if at_from is not None:
        stmt = stmt.where(TimelineEntry.at >= at_from)
    if at_to is not None:
        stmt = stmt.where(TimelineEntry.at < at_to)
    if expr is not None:
        stmt = stmt.where(_text_filter(session, actor, customer_id, expr, type_ids,
                                       frozenset(t.id for t in types), kinds))
    if cursor:
        at, last = _decode(cursor)
        stmt = stmt.where(or_(TimelineEntry.at < at, and_(TimelineEntry.at == at, TimelineEntry.id < last)))
    rows = list(session.execute(stmt.order_by(TimelineEntry.at.desc(), TimelineEntry.id.desc())
                                .limit(limit + 1)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    items = [HistoryItem(id=r.id, at=r.at, kind=r.kind, subject_type=r.subject_type, subject_id=r.subject_id,
                         document_id=r.document_id, title=r.title, summary=r.summary, channel=r.channel,
                         state=r.state, details=dict(r.details or {})) for r in rows]
    return HistoryPage(items, _encode(rows[-1]) if more and rows else None)
