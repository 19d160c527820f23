"""Search for the API and CLI: a query checked and scoped to what the caller may read, the index verified
against the repository, and the whole index rebuilt."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import and_, func, insert, literal, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from repository.access import can_read, can_see_restricted
from repository.db import transaction
from repository.errors import InvalidInputError
from repository.models import Document, DocumentType, User
from repository.types import UTCDateTime, utcnow
from search import indexing
from search.backend import MAX_DEPTH, Hit, SearchQuery, get_backend
from search.errors import SearchUnavailableError
from search.metadata import check_key
from search.models import SearchEntry, SearchQueueItem
from search.query import parse

SORTS = ("relevance", "newest", "oldest")
_META_KEY = 100
_META_VALUE = 500  # as saved searches allow (search.matters.service)


@dataclass
class SearchPage:
    """Hits the caller may read, the total, facets by type name / year / customer, and the next cursor."""

    hits: list[Hit]
    total: int
    facets: dict[str, dict[str, int]]
    next_cursor: str | None


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["o"]
        if not isinstance(offset, int) or offset < 0:
            raise ValueError
        return offset
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInputError("the cursor is not valid; use the next_cursor of a previous page",
                                field="cursor") from exc


def _readable_types(session: Session, actor: User, document_type: str | None) -> tuple[list[str], dict[str, str]]:
    types = list(session.execute(select(DocumentType)).scalars())
    if document_type is not None and not any(t.name == document_type for t in types):
        raise InvalidInputError(f"there is no document type {document_type!r}", field="document_type")
    names = {t.id: t.name for t in types}
    ids = [t.id for t in types if can_read(actor, t) and (document_type is None or t.name == document_type)]
    return ids, names


def check_window(limit: int, created_from: dt.datetime | None, created_to: dt.datetime | None) -> None:
    """InvalidInputError unless the page size is 1-100 and the from/to times carry a time zone."""
    if not 1 <= limit <= 100:
        raise InvalidInputError("limit must be from 1 to 100", field="limit")
    for when, name in ((created_from, "from"), (created_to, "to")):
        if when is not None and when.tzinfo is None:
            raise InvalidInputError(f"{name} needs a time zone (such as 2025-01-01T00:00:00Z)", field=name)


def search(session: Session, *, actor: User, q: str | None = None, document_type: str | None = None,
           customer_id: str | None = None, created_from: dt.datetime | None = None,
           created_to: dt.datetime | None = None, meta: dict[str, str] | None = None, sort: str = "relevance",
           cursor: str | None = None, limit: int = 20, facets: bool = True) -> SearchPage:
    """Search everything the actor may read. QuerySyntaxError (400) says where a query is malformed."""
    expr = parse(q)
    if sort not in SORTS:
        raise InvalidInputError(f"sort must be one of {', '.join(SORTS)}", field="sort")
    check_window(limit, created_from, created_to)
    meta = meta or {}
    if any(not k or len(k) > _META_KEY for k in meta):
        raise InvalidInputError(f"metadata filter names must be 1-{_META_KEY} characters", field="meta")
    for key, value in meta.items():  # longer values are not indexed by Elasticsearch (ignore_above 1024)
        check_key(key)
        if len(value) > _META_VALUE:
            raise InvalidInputError(f"meta.{key} must be at most {_META_VALUE} characters", field=f"meta.{key}")
    offset = _offset(cursor)
    if offset + limit > MAX_DEPTH:
        raise InvalidInputError(f"results are paged up to the first {MAX_DEPTH}; narrow the query", field="cursor")
    type_ids, names = _readable_types(session, actor, document_type)
    query = SearchQuery(expr=expr, type_ids=type_ids, all_type_ids=frozenset(names),
                        include_restricted=can_see_restricted(actor),
                        customer_id=customer_id, created_from=created_from, created_to=created_to, meta=meta,
                        sort=sort, offset=offset, limit=limit, facets=facets)
    try:
        result = get_backend().search(session, query)
    except SearchUnavailableError:
        raise
    except ConnectionError as exc:
        raise SearchUnavailableError("search is unavailable right now; retry shortly", retry_after=5) from exc
    hits = _still_readable(session, actor, result.hits, type_ids)
    facets_out = dict(result.facets)
    if "document_type" in facets_out:  # only readable types: one created since `names` was read is not shown
        facets_out["document_type"] = {names[k]: v for k, v in facets_out["document_type"].items()
                                       if k in type_ids}
    more = offset + limit < min(result.total, MAX_DEPTH)
    return SearchPage(hits, result.total, facets_out, _cursor(offset + limit) if more else None)


def _still_readable(session: Session, actor: User, hits: list[Hit], type_ids: list[str]) -> list[Hit]:
    """Drop hits the index has not caught up with (trashed, destroyed, restricted since, of a type the caller may
    not read): never show them. The rest say how their text was extracted (a document whose text could not be
    read is found by its title and metadata only)."""
    if not hits:
        return hits
    rows = session.execute(select(Document.id, Document.state, Document.restricted, Document.document_type_id,
                                  SearchEntry.text_status, SearchEntry.text_error)
                           .outerjoin(SearchEntry, SearchEntry.document_id == Document.id)
                           .where(Document.id.in_([h.document_id for h in hits]))).all()
    readable = set(type_ids)
    allowed = {r.id: r for r in rows if r.state == "active" and r.document_type_id in readable
               and (not r.restricted or can_see_restricted(actor))}
    return [dataclasses.replace(h, text_status=allowed[h.document_id].text_status or h.text_status,
                                text_error=allowed[h.document_id].text_error)
            for h in hits if h.document_id in allowed]


WITHOUT_TEXT = ("empty", "failed", "too_large", "unsupported")  # text statuses of documents found by metadata only


@dataclass
class VerifyReport:
    """Documents missing from the index, indexed in an older state, or indexed but gone."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    queued: int = 0
    # Indexed by title and metadata only: how many per text status (empty, failed, too_large, unsupported), and
    # which. Not an index fault (a reindex reads them the same way), so `ok` does not count them.
    without_text: dict[str, int] = field(default_factory=dict)
    without_text_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the index matches the repository."""
        return not (self.missing or self.stale or self.extra)


def verify(session: Session, *, limit: int = 1000) -> VerifyReport:
    """Compare the index with the repository: every active document indexed with its current version, title,
    metadata and restriction; nothing else indexed. Lists up to `limit` ids of each kind."""
    report = VerifyReport(queued=indexing.queued(session))
    label = func.concat(Document.current_major, ".", Document.current_minor) if session.bind.dialect.name == \
        "postgresql" else (func.cast(Document.current_major, SearchEntry.version.type) + "." +
                           func.cast(Document.current_minor, SearchEntry.version.type))
    report.checked = session.execute(select(func.count()).select_from(Document)
                                     .where(Document.state == "active")).scalar_one()
    joined = and_(SearchEntry.document_id == Document.id)
    report.missing = list(session.execute(
        select(Document.id).outerjoin(SearchEntry, joined)
        .where(Document.state == "active", SearchEntry.id.is_(None)).limit(limit)).scalars())
    stale = select(Document.id, Document.title, Document.meta, Document.restricted, label.label("label"),
                   SearchEntry.title.label("i_title"), SearchEntry.meta.label("i_meta"),
                   SearchEntry.restricted.label("i_restricted"), SearchEntry.version).join(SearchEntry, joined) \
        .where(Document.state == "active")
    for row in session.execute(stale).yield_per(1000):
        if (row.title, row.meta, row.restricted, row.label) != (row.i_title, row.i_meta, row.i_restricted,
                                                                 row.version) and len(report.stale) < limit:
            report.stale.append(row.id)
    report.extra = list(session.execute(
        select(SearchEntry.document_id).join(Document, joined).where(Document.state != "active").limit(limit)
    ).scalars())
    textless = and_(Document.state == "active", SearchEntry.text_status.in_(WITHOUT_TEXT))
    report.without_text = dict(session.execute(select(SearchEntry.text_status, func.count()).join(Document, joined)
                                               .where(textless).group_by(SearchEntry.text_status)).all())
    report.without_text_ids = list(session.execute(select(SearchEntry.document_id).join(Document, joined)
                                                   .where(textless).order_by(SearchEntry.document_id)
                                                   .limit(limit)).scalars())
    backend = get_backend()
    if not getattr(backend, "transactional", False):
        report.missing += _missing_in_backend(session, backend, limit - len(report.missing))
    return report


def _missing_in_backend(session: Session, backend, room: int) -> list[str]:  # noqa: ANN001
    missing: list[str] = []
    after = ""
    while room > len(missing):
        rows = session.execute(select(SearchEntry.document_id, SearchEntry.revision)
                               .where(SearchEntry.document_id > after).order_by(SearchEntry.document_id)
                               .limit(1000)).all()
        if not rows:
            break
        indexed = backend.revisions(session, [r.document_id for r in rows])
        missing += [r.document_id for r in rows if indexed.get(r.document_id) != r.revision]
        after = rows[-1].document_id
    return missing[:room]


def enqueue_all(engine: Engine) -> int:
    """Queue every active document, and every other one the index still holds (the indexer removes those), not
    queued yet (resumable: a queued document stays queued until indexed); returns how many were added. One
    INSERT ... SELECT, however many documents there are."""
    when = utcnow()
    with transaction(engine) as session:
        todo = select(Document.id).where(
            or_(Document.state == "active", Document.id.in_(select(SearchEntry.document_id))),
            Document.id.not_in(select(SearchQueueItem.document_id)))
        count = session.execute(select(func.count()).select_from(todo.subquery())).scalar_one()
        session.execute(insert(SearchQueueItem).from_select(
            ["document_id", "queued_at", "next_attempt_at", "attempts"],
            todo.add_columns(literal(when, UTCDateTime()), literal(when, UTCDateTime()), literal(0))))
        return count


def reindex(engine: Engine, *, progress: Callable[[int, int], None] | None = None) -> int:
    """Rebuild the index: queue every active document and every indexed one that is no longer active (trashed,
    destroyed: the indexer removes their entries, so `verify` finds no extras), index them all, then let the
    backend swap in a fresh index built from search_entries (Elasticsearch: a new index behind the alias; FTS5: a
    rebuild statement).
    Resumable: an interrupted run leaves the queue, which the next run (or the indexer) finishes."""
    queued = enqueue_all(engine)
    with transaction(engine, readonly=True) as session:
        total = indexing.queued(session)
    done = 0
    while n := indexing.index_pending(engine):
        done += n
        if progress is not None:
            progress(done, max(total, queued))
    _rebuild(engine)
    return done


def _rebuild(engine: Engine) -> None:
    from search.backend import IndexDoc

    backend = get_backend()
    with transaction(engine) as session:
        rebuild = backend.rebuild(session)
        try:
            names = dict(session.execute(select(DocumentType.id, DocumentType.name)).all())
            after = -1
            while True:
                rows = list(session.execute(select(SearchEntry).where(SearchEntry.id > after)
                                            .order_by(SearchEntry.id).limit(500)).scalars())
                if not rows:
                    break
                rebuild.upsert(session, [IndexDoc(
                    document_id=e.document_id, revision=e.revision, title=e.title, body=e.body,
                    document_type_id=e.document_type_id, document_type=names.get(e.document_type_id, ""),
                    customer_id=e.customer_id, created_at=e.created_at, metadata=e.meta or {},
                    text_status=e.text_status, restricted=e.restricted, version=e.version) for e in rows])
                after = rows[-1].id
            rebuild.commit(session)
        except BaseException:
            rebuild.abort(session)
            raise
