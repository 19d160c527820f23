"""Indexing: repository events queue a document (in the event's transaction, through the outbox); the indexer
takes queued documents, extracts their text OUTSIDE any write transaction, writes `search_entries` (the index
source, from which the SQL backends index through triggers or in the same transaction), sends them to an
external backend, and only then dequeues them. A backend that is down leaves the queue to catch up later."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass

from sqlalchemy import and_, delete, insert, select, tuple_, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from repository import events
from repository.config import get_settings
from repository.db import is_postgres, transaction
from repository.models import Document, DocumentType, DocumentVersion, OutboxEvent
from repository.runtime import get_runtime
from repository.types import utcnow
from repository.vault import open_blob
from search.backend import IndexDoc, get_backend
from search.models import SearchEntry, SearchQueueItem

log = logging.getLogger(__name__)
LEASE = dt.timedelta(minutes=5)
MAX_BACKOFF = dt.timedelta(minutes=10)
BATCH = 200
# Repository events that change what the index holds for a document.
DOCUMENT_EVENTS = (events.DOCUMENT_CREATED, events.DOCUMENT_CHECKED_IN, events.DOCUMENT_UPDATED,
                   events.DOCUMENT_TRASHED, events.DOCUMENT_RESTORED, events.DOCUMENT_DESTROYED)
ERASURE_REQUESTED = "erasure.requested"  # records restricts a customer's kept documents (the name is the contract)


def enqueue(session: Session, document_ids: list[str]) -> None:
    """Queue documents for (re)indexing in the caller's transaction; queuing again makes one due now."""
    if not document_ids:
        return
    now = utcnow()
    rows = [{"document_id": i, "queued_at": now, "next_attempt_at": now, "attempts": 0} for i in document_ids]
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(SearchQueueItem)
    session.execute(stmt.on_conflict_do_update(index_elements=["document_id"], set_={
        "queued_at": stmt.excluded.queued_at, "next_attempt_at": stmt.excluded.next_attempt_at,
        "attempts": 0, "last_error": None}), rows)


def on_document_event(session: Session, event: OutboxEvent) -> None:
    """Outbox subscriber: a document changed; queue it."""
    if event.payload.get("document_id"):
        enqueue(session, [event.payload["document_id"]])


def on_erasure(session: Session, event: OutboxEvent) -> None:
    """Outbox subscriber: an erasure request restricted some of a customer's documents; queue them all."""
    ids = list(session.execute(select(Document.id).where(
        Document.customer_id == event.payload.get("customer_id"))).scalars())
    enqueue(session, ids)


def register() -> None:
    """Subscribe the indexer's queue to the events that change documents."""
    for name in DOCUMENT_EVENTS:
        events.subscribe(name, "search.index", on_document_event)
    events.subscribe(ERASURE_REQUESTED, "search.erasure", on_erasure)


@dataclass
class _Work:
    document_id: str
    queued_at: dt.datetime
    doc: IndexDoc | None = None  # None: remove from the index
    revision: int | None = None
    sha256: str = ""
    error: str | None = None
    retry: str | None = None  # the content could not be read now (storage down): try again later


def _claim(engine: Engine, limit: int) -> list[tuple[str, dt.datetime]]:
    now = utcnow()
    with transaction(engine) as session:
        stmt = (select(SearchQueueItem.document_id, SearchQueueItem.queued_at)
                .where(SearchQueueItem.next_attempt_at <= now)
                .order_by(SearchQueueItem.next_attempt_at).limit(limit))
        if is_postgres(session):
            stmt = stmt.with_for_update(skip_locked=True)
        items = [(row.document_id, row.queued_at) for row in session.execute(stmt)]
        if items:
            session.execute(update(SearchQueueItem).where(SearchQueueItem.document_id.in_([i for i, _ in items]))
                            .values(next_attempt_at=now + LEASE))
        return items


class _UnreadableError(Exception):
    """The stored content could not be read (storage down, key trouble): retry later, do not index as failed."""


def _extract(session: Session, document_id: str, version: DocumentVersion) -> tuple[str, str, str | None]:
    from search.extract import extract_text  # the extraction layer (worker processes) loads on first use

    settings = get_settings()

    def opener():  # noqa: ANN202
        return open_blob(session, get_runtime(), document_id=document_id, blob_key=version.blob_key,
                         size=version.size)

    try:
        result = extract_text(opener, media_type=version.media_type, size=version.size, filename=version.filename,
                              max_bytes=settings.search_max_extract_bytes, max_chars=settings.search_max_text_chars,
                              timeout_s=settings.search_extract_timeout_seconds)
    except Exception as exc:  # extract_text reports bad files as a status; this is reading the content itself
        log.warning("content of %s could not be read for indexing: %s", document_id, exc)
        raise _UnreadableError(f"{type(exc).__name__}: {exc}") from exc
    return result.text, result.status, result.error


def _prepare(engine: Engine, claimed: list[tuple[str, dt.datetime]]) -> list[_Work]:
    """Read what each claimed document should look like in the index: three queries for the whole batch, and
    extraction only where the version's text is not in the index already (read-only: no write lock held)."""
    ids = [document_id for document_id, _ in claimed]
    work = [_Work(document_id, queued_at) for document_id, queued_at in claimed]
    with transaction(engine, readonly=True) as session:
        types = {t.id: t.name for t in session.execute(select(DocumentType)).scalars()}
        documents = {d.id: d for d in session.execute(select(Document).where(Document.id.in_(ids))).scalars()}
        current = and_(DocumentVersion.document_id == Document.id, DocumentVersion.major == Document.current_major,
                       DocumentVersion.minor == Document.current_minor)
        versions = {v.document_id: v for v in session.execute(
            select(DocumentVersion).join(Document, current).where(Document.id.in_(ids))).scalars()}
        texts = {row.document_id: row for row in session.execute(
            select(SearchEntry.document_id, SearchEntry.content_sha256, SearchEntry.body, SearchEntry.text_status,
                   SearchEntry.text_error).where(SearchEntry.document_id.in_(ids)))}
        for item in work:
            document = documents.get(item.document_id)
            if document is None or document.state != "active":
                continue  # gone, trashed or destroyed: removed from the index
            version = versions[item.document_id]
            known = texts.get(item.document_id)
            if known is not None and known.content_sha256 == version.sha256:
                body, status, error = known.body, known.text_status, known.text_error
            else:
                try:
                    body, status, error = _extract(session, item.document_id, version)
                except _UnreadableError as exc:
                    item.retry = str(exc)
                    continue
            item.revision = document.revision
            item.doc = IndexDoc(document_id=document.id, revision=document.revision, title=document.title, body=body,
                                document_type_id=document.document_type_id,
                                document_type=types.get(document.document_type_id, ""),
                                customer_id=document.customer_id, created_at=document.created_at,
                                metadata=document.meta or {}, text_status=status, restricted=document.restricted,
                                version=version.label)
            item.sha256, item.error = version.sha256, error
    return work


def _write(session: Session, work: list[_Work]) -> tuple[list[IndexDoc], list[str], list[_Work]]:
    """Write search_entries for the prepared documents whose revision has not moved on meanwhile: one DELETE,
    one INSERT and one executemany UPDATE for the batch."""
    upserts, removals, done = [], [], []
    ids = [w.document_id for w in work]
    current = dict(session.execute(select(Document.id, Document.revision).where(Document.id.in_(ids))).all())
    existing = dict(session.execute(select(SearchEntry.document_id, SearchEntry.id)
                                    .where(SearchEntry.document_id.in_(ids))).all())
    now = utcnow()
    inserts, updates = [], []
    for item in work:
        if item.doc is None:
            removals.append(item.document_id)
            done.append(item)
            continue
        if current.get(item.document_id) != item.revision:
            continue  # changed while we extracted: it was queued again, so the next round indexes it
        d = item.doc
        values = {"revision": d.revision, "version": d.version, "content_sha256": item.sha256,
                  "title": d.title, "body": d.body, "document_type_id": d.document_type_id,
                  "customer_id": d.customer_id, "created_at": d.created_at, "year": d.created_at.year,
                  "restricted": d.restricted, "meta": d.metadata, "text_status": d.text_status,
                  "text_error": item.error[:500] if item.error else None, "indexed_at": now}
        if item.document_id in existing:
            updates.append({"id": existing[item.document_id], **values})
        else:
            inserts.append({"document_id": item.document_id, **values})
        upserts.append(d)
        done.append(item)
    if removals:
        session.execute(delete(SearchEntry).where(SearchEntry.document_id.in_(removals)))
    if inserts:
        session.execute(insert(SearchEntry), inserts)
    if updates:
        session.execute(update(SearchEntry), updates)  # bulk UPDATE by primary key
    return upserts, removals, done


def _dequeue(session: Session, done: list[_Work]) -> None:
    """Remove the indexed documents from the queue, unless queued again since they were claimed."""
    if done:
        session.execute(delete(SearchQueueItem).where(tuple_(SearchQueueItem.document_id, SearchQueueItem.queued_at)
                                                      .in_([(w.document_id, w.queued_at) for w in done])))


def _backoff(engine: Engine, items: list[_Work], error: str) -> None:
    with transaction(engine) as session:
        for item in items:
            row = session.get(SearchQueueItem, item.document_id)
            if row is not None and row.queued_at == item.queued_at:
                row.attempts += 1
                row.last_error = error[:2000]
                row.next_attempt_at = utcnow() + min(dt.timedelta(seconds=2 ** row.attempts), MAX_BACKOFF)


def index_pending(engine: Engine, *, limit: int = BATCH) -> int:
    """Index up to `limit` queued documents; returns how many were claimed."""
    claimed = _claim(engine, limit)
    if not claimed:
        return 0
    work = _prepare(engine, claimed)
    for item in [w for w in work if w.retry]:
        _backoff(engine, [item], item.retry or "")
    work = [w for w in work if not w.retry]
    backend = get_backend()
    with transaction(engine) as session:
        upserts, removals, done = _write(session, work)
        if getattr(backend, "transactional", False):
            backend.delete(session, removals)
            backend.upsert(session, upserts)
            _dequeue(session, done)
    if not getattr(backend, "transactional", False):
        try:
            with transaction(engine, readonly=True) as session:
                backend.delete(session, removals)
                backend.upsert(session, upserts)
        except Exception as exc:  # the backend is down or refused: the queue keeps them; retry with backoff
            log.warning("search backend %s failed; %d documents stay queued: %s", backend.name, len(done), exc)
            _backoff(engine, done, f"{type(exc).__name__}: {exc}")
            return len(claimed)
        with transaction(engine) as session:
            _dequeue(session, done)
    return len(claimed)


def queued(session: Session) -> int:
    """How many documents wait to be indexed."""
    from sqlalchemy import func

    return session.execute(select(func.count()).select_from(SearchQueueItem)).scalar_one()


def drain(engine: Engine) -> int:
    """Index until nothing is due (tests, reindex); returns how many were processed."""
    total = 0
    while n := index_pending(engine):
        total += n
    return total


def run_indexer(engine: Engine, stop: threading.Event, *, poll_seconds: float = 1.0) -> None:
    """Index queued documents until `stop` is set."""
    events.poll_until_stopped(lambda: index_pending(engine), stop, poll_seconds=poll_seconds, what="search indexing")


