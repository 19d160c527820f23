"""Indexing: repository events queue a document (in the event's transaction, through the outbox); the indexer
takes queued documents, extracts their text OUTSIDE any write transaction, writes `search_entries` (the index
source, from which the SQL backends index through triggers or in the same transaction), sends them to an
external backend, and only then dequeues them. A backend that is down leaves the queue to catch up later."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, delete, insert, select, tuple_, update
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
BATCH = 500
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
    same_text: bool = False  # title and text as already indexed: the row's text columns are left alone


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


def extract_version(session: Session, document_id: str, version) -> tuple[str, str, str | None]:  # noqa: ANN001
    """The text of a stored version (status and error as extract_text reports them), with the configured size
    cap and time limit; raises _UnreadableError when the content itself cannot be read now."""
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
        documents = {d.id: d for d in session.execute(select(
            Document.id, Document.title, Document.document_type_id, Document.customer_id, Document.created_at,
            Document.meta, Document.restricted, Document.revision, Document.state).where(Document.id.in_(ids)))}
        current = and_(DocumentVersion.document_id == Document.id, DocumentVersion.major == Document.current_major,
                       DocumentVersion.minor == Document.current_minor)
        versions = {v.document_id: v for v in session.execute(select(
            DocumentVersion.document_id, DocumentVersion.major, DocumentVersion.minor, DocumentVersion.sha256,
            DocumentVersion.blob_key, DocumentVersion.size, DocumentVersion.media_type, DocumentVersion.filename)
            .join(Document, current).where(Document.id.in_(ids)))}
        texts = {row.document_id: row for row in session.execute(
            select(SearchEntry.document_id, SearchEntry.content_sha256, SearchEntry.title, SearchEntry.body,
                   SearchEntry.text_status, SearchEntry.text_error).where(SearchEntry.document_id.in_(ids)))}
        for item in work:
            document = documents.get(item.document_id)
            if document is None or document.state != "active":
                continue  # gone, trashed or destroyed: removed from the index
            version = versions[item.document_id]
            known = texts.get(item.document_id)
            if known is not None and known.content_sha256 == version.sha256:
                body, status, error = known.body, known.text_status, known.text_error
                item.same_text = known.title == document.title
            else:
                try:
                    body, status, error = extract_version(session, item.document_id, version)
                except _UnreadableError as exc:
                    item.retry = str(exc)
                    continue
            item.revision = document.revision
            item.doc = IndexDoc(document_id=document.id, revision=document.revision, title=document.title, body=body,
                                document_type_id=document.document_type_id,
                                document_type=types.get(document.document_type_id, ""),
                                customer_id=document.customer_id, created_at=document.created_at,
                                metadata=document.meta or {}, text_status=status, restricted=document.restricted,
                                version=f"{version.major}.{version.minor}")
            item.sha256, item.error = version.sha256, error
    return work


_TEXT_COLUMNS = ("title", "body")
_COLUMN = {"meta": "metadata"}  # attribute → column name where they differ


def _write(session: Session, work: list[_Work]) -> tuple[list[IndexDoc], list[str], list[_Work]]:
    """Write search_entries for the prepared documents whose revision has not moved on meanwhile: one DELETE,
    one INSERT and one executemany UPDATE for the batch."""
    upserts, removals, done = [], [], []
    ids = [w.document_id for w in work]
    current = dict(session.execute(select(Document.id, Document.revision).where(Document.id.in_(ids))).all())
    existing = dict(session.execute(select(SearchEntry.document_id, SearchEntry.id)
                                    .where(SearchEntry.document_id.in_(ids))).all())
    now = utcnow()
    inserts, updates, touched = [], [], []
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
            if item.same_text:  # leaving title and body out of the UPDATE spares the full-text index a rewrite
                touched.append({"_id": existing[item.document_id],
                                **{k: v for k, v in values.items() if k not in _TEXT_COLUMNS}})
            else:
                updates.append({"_id": existing[item.document_id], **values})
        else:
            inserts.append({"document_id": item.document_id, **values})
        upserts.append(d)
        done.append(item)
    if removals:
        session.execute(delete(SearchEntry).where(SearchEntry.document_id.in_(removals)))
    if inserts:
        session.execute(insert(SearchEntry), inserts)
    for rows in (updates, touched):
        if rows:
            table = SearchEntry.__table__
            names = [k for k in rows[0] if k != "_id"]
            session.execute(update(table).where(table.c.id == bindparam("_id"))
                            .values({table.c[_COLUMN.get(k, k)]: bindparam(k) for k in names}), rows)
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


class Pipeline:
    """Sends one batch to an external backend on a thread while the next batch is read and written, so the
    database work and the backend's indexing overlap; at most one batch is in flight, so batches reach the
    backend in order."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="search-send")
        self._pending: Future[None] | None = None

    def submit(self, send: Callable[[], None]) -> None:
        """Wait for the batch in flight, then send this one."""
        self.wait()
        self._pending = self._pool.submit(send)

    def wait(self) -> None:
        """Wait until nothing is in flight."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def close(self) -> None:
        """Finish what is in flight and stop the thread."""
        self.wait()
        self._pool.shutdown()


def _send(engine: Engine, backend, upserts: list[IndexDoc], removals: list[str],  # noqa: ANN001
          done: list[_Work]) -> None:
    try:
        with transaction(engine, readonly=True) as session:
            backend.delete(session, removals)
            backend.upsert(session, upserts)
    except Exception as exc:  # the backend is down or refused: the queue keeps them; retry with backoff
        log.warning("search backend %s failed; %d documents stay queued: %s", backend.name, len(done), exc)
        _backoff(engine, done, f"{type(exc).__name__}: {exc}")
        return
    with transaction(engine) as session:
        _dequeue(session, done)


def index_pending(engine: Engine, *, limit: int = BATCH, pipeline: Pipeline | None = None) -> int:
    """Index up to `limit` queued documents; returns how many were claimed. With a `pipeline`, an external
    backend's write of this batch may still be in flight on return."""
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
        if pipeline is None:
            _send(engine, backend, upserts, removals, done)
        else:
            pipeline.submit(lambda: _send(engine, backend, upserts, removals, done))
    return len(claimed)


def queued(session: Session) -> int:
    """How many documents wait to be indexed."""
    from sqlalchemy import func

    return session.execute(select(func.count()).select_from(SearchQueueItem)).scalar_one()


def drain(engine: Engine) -> int:
    """Index until nothing is due (tests, reindex); returns how many were processed."""
    total = 0
    pipeline = Pipeline()
    try:
        while n := index_pending(engine, pipeline=pipeline):
            total += n
    finally:
        pipeline.close()
    return total


def run_indexer(engine: Engine, stop: threading.Event, *, poll_seconds: float = 1.0) -> None:
    """Index queued documents until `stop` is set."""
    pipeline = Pipeline()

    def step() -> int:
        done = index_pending(engine, pipeline=pipeline)
        if not done:
            pipeline.wait()  # idle: let the last batch land before sleeping
        return done

    try:
        events.poll_until_stopped(step, stop, poll_seconds=poll_seconds, what="search indexing")
    finally:
        pipeline.close()


