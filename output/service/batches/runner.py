"""Running a batch: chunks of pending rows rendered into one DOCX, converted once, split into one PDF/A per
letter, and archived with their ledger rows in one transaction per chunk.

Decisions:
- Exactly one letter per row: a row turns `done` in the same transaction that archives its letter, and the
  letters table holds (batch_id, batch_row) unique, so even two runners racing cannot both commit a row.
- A runner holds the batch by a lease it renews with every chunk it commits; the commit checks the lease in
  the same transaction, so a runner that lost it (it stalled, the batch was cancelled) commits nothing. A
  crashed runner's lease runs out and another runner resumes with the rows still pending: a crash loses at
  most the chunks in flight, which are made again (their blobs are orphans for `postroom gc`).
- Conversions run on the pool's workers in parallel (one chunk each) while the main thread renders the next
  chunk and archives the oldest finished one, in order.
- A chunk that fails as a whole (a render error, a document LibreOffice refuses, a split that finds no start)
  is retried letter by letter, so only the rows at fault fail, each with its reason. Busy converters are
  waited for; converters that are down pause the batch (it goes back to `queued`, last_error says why).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from correspondence.service import BatchRenderer, Variant, batch_renderer, customer_context, data_digest
from output import events as names
from output.compose import ComposeError, get_pool, split_letters
from output.errors import ConversionError, PoolBusyError, ServiceUnavailableError
from output.models import (
    BATCH_COMPLETED,
    BATCH_FAILED,
    BATCH_QUEUED,
    BATCH_RUNNING,
    ROW_DONE,
    ROW_FAILED,
    ROW_PENDING,
    Letter,
    LetterBatch,
    LetterBatchRow,
)
from output.service import policy
from output.service.batches.lease import Progress, claim_next, new_owner, progress_from, progress_of
from output.service.letters import (
    DEFAULT_CATEGORY,
    ComposedLetter,
    PreparedLetter,
    archive_letters,
    compose_letter,
    letter_metadata,
    new_reference,
)
from repository import audit, events
from repository.config import get_settings
from repository.db import transaction
from repository.errors import InvalidInputError, RepositoryError
from repository.models import Customer, User
from repository.types import new_id, utcnow

log = logging.getLogger(__name__)
ACTOR = "system:batch-runner"
BUSY_WAIT_S = 1.0
PAUSE_S, MAX_PAUSE_S = 30.0, 900.0  # a paused batch waits this long (doubling per failed run, capped)
MAX_FAILED_RUNS = 5  # runs that end in an unexpected error, in a row, before the batch is `failed`


class LeaseLostError(RuntimeError):
    """This runner no longer holds the batch (it was cancelled, or another runner took it over)."""


@dataclass
class Item:
    """One row on its way: its row number, what it renders with, and its letter."""

    row_no: int
    variant: Variant
    context: dict[str, Any]
    prepared: PreparedLetter


@dataclass
class Chunk:
    """Rows taken together: their letters (grouped by variant for rendering) and the rows that failed."""

    items: list[Item] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    groups: list[tuple[Path | None, list[Item]]] = field(default_factory=list)  # a shared DOCX, or one letter's
    composed: list[tuple[int, ComposedLetter]] = field(default_factory=list)
    last_row: int = 0


class BatchRunner:
    """Runs one batch whose lease `owner` holds, until no row is pending, the lease is lost or `stop` is set."""

    def __init__(self, batch_id: str, *, owner: str, engine: Engine | None = None,
                 stop: threading.Event | None = None, on_progress: Callable[[Progress], None] | None = None) -> None:
        self.batch_id, self.owner, self.engine = batch_id, owner, engine
        self.stop = stop or threading.Event()
        self.on_progress = on_progress
        self.settings = get_settings()
        self.actor: User | None = None
        self.actor_name = ACTOR
        self.pool = get_pool()
        self.workdir = Path(tempfile.mkdtemp(prefix="batch-", dir=self._tmp_root()))

    def _tmp_root(self) -> Path:
        root = self.settings.tmp_dir / "batches"
        root.mkdir(parents=True, exist_ok=True)
        # A killed runner leaves its work directory; a live one writes into its own every chunk.
        stale = time.time() - 2 * self.settings.batch_lease_seconds
        for old in root.glob("batch-*"):
            with contextlib.suppress(OSError):
                if old.stat().st_mtime < stale:
                    shutil.rmtree(old, ignore_errors=True)
        return root

    def run(self) -> Progress:
        """Run the batch (see the module's decisions); returns its counts when this runner stops."""
        try:
            with transaction(self.engine, readonly=True) as session:
                batch = session.get(LetterBatch, self.batch_id)
                self.actor = session.get(User, batch.created_by)
                self.actor_name = self.actor.username if self.actor else ACTOR
                self.category, self.channel = batch.category, batch.channel
                self.renderer = batch_renderer(session, pinned=batch.versions)
            return self._loop()
        except LeaseLostError as exc:
            log.warning("batch %s: runner stopped: %s", self.batch_id, exc)
            return self.progress()
        except ServiceUnavailableError as exc:  # LibreOffice is down or missing: wait, then try again
            log.warning("batch %s paused: %s", self.batch_id, exc)
            self._release(str(exc), pause=True)
            return self.progress()
        except Exception as exc:
            log.exception("batch %s: the runner failed", self.batch_id)
            self._release(f"the runner failed: {type(exc).__name__}: {exc}", pause=True, error=True)
            return self.progress()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _loop(self) -> Progress:
        depth = self.pool.workers + 1
        inflight: deque[tuple[Chunk, Future[Chunk]]] = deque()
        cursor, exhausted = 0, False
        with ThreadPoolExecutor(self.pool.workers, thread_name_prefix="batch-compose") as executor:
            try:
                while True:
                    while not exhausted and len(inflight) < depth and not self.stop.is_set():
                        chunk = self._prepare(cursor)
                        if chunk is None:
                            exhausted = True
                            break
                        cursor = chunk.last_row
                        inflight.append((chunk, executor.submit(self._compose, chunk)))
                    if not inflight:
                        break
                    chunk, future = inflight.popleft()
                    self._archive(future.result())
            finally:
                for _chunk, future in inflight:
                    future.cancel()
        if exhausted:
            return self._finish()
        self._release(None)
        return self.progress()

    # preparing: read the rows, find customers, check data, render

    def _prepare(self, cursor: int) -> Chunk | None:
        chunk = Chunk()
        with transaction(self.engine, readonly=True) as session:
            rows = session.execute(select(LetterBatchRow).where(
                LetterBatchRow.batch_id == self.batch_id, LetterBatchRow.state == ROW_PENDING,
                LetterBatchRow.row_no > cursor).order_by(LetterBatchRow.row_no)
                .limit(self.settings.batch_chunk_letters)).scalars().all()
            if not rows:
                return None
            chunk.last_row = rows[-1].row_no
            customers = _customers(session, rows)
            for row in rows:
                customer = customers.get(("id", row.customer_id)) or customers.get(("ref", row.customer_ref))
                if customer is None:
                    named = f"reference {row.customer_ref!r}" if row.customer_ref else f"id {row.customer_id!r}"
                    chunk.failed[row.row_no] = f"there is no customer with {named}"
                    continue
                try:
                    chunk.items.append(self._item(row, customer))
                except RepositoryError as exc:
                    chunk.failed[row.row_no] = exc.detail
        self._render(chunk)
        return chunk

    def _item(self, row: LetterBatchRow, customer: Customer) -> Item:
        seen = customer_context(customer)
        variant = self.renderer.variant_for(seen)
        BatchRenderer.check(variant, row.data)
        if self.channel:
            policy.check_override(customer, self.channel)
        letter_id, reference = new_id(), new_reference()
        context = BatchRenderer.context(customer=seen, data=row.data, letter={"id": letter_id, "reference": reference})
        category = (self.category or variant.category or DEFAULT_CATEGORY).strip().lower()
        prepared = PreparedLetter(letter_id=letter_id, reference=reference, customer_id=customer.id,
                                  template_id=variant.template_id, template_name=variant.name,
                                  template_version=variant.version, category=category,
                                  data_sha256=data_digest(row.data), channel=self.channel, docx=None)
        return Item(row_no=row.row_no, variant=variant, context=context, prepared=prepared)

    def _render(self, chunk: Chunk) -> None:
        """Render each variant's letters into one DOCX (or one DOCX per letter where the template needs it)."""
        by_variant: dict[str, list[Item]] = {}
        for item in chunk.items:
            by_variant.setdefault(item.variant.template_id, []).append(item)
        for items in by_variant.values():
            variant = items[0].variant
            if variant.single_only:
                chunk.groups.extend(self._singles(chunk, items))
                continue
            path = self.workdir / f"{new_id()}.docx"
            try:
                with path.open("wb") as out:
                    BatchRenderer.render_many(variant, (i.context for i in items), out)
                chunk.groups.append((path, items))
            except InvalidInputError:
                path.unlink(missing_ok=True)  # a row's data broke the template: find which, render the rest
                chunk.groups.extend(self._singles(chunk, items))

    @staticmethod
    def _singles(chunk: Chunk, items: list[Item]) -> list[tuple[None, list[Item]]]:
        groups = []
        for item in items:
            try:
                docx = BatchRenderer.render_one(item.variant, item.context)
            except InvalidInputError as exc:
                chunk.failed[item.row_no] = exc.detail
                continue
            item.prepared = PreparedLetter(**{**item.prepared.__dict__, "docx": docx})
            groups.append((None, [item]))
        return groups

    # composing: convert, split, stamp (on an executor thread)

    def _compose(self, chunk: Chunk) -> Chunk:
        for path, items in chunk.groups:
            if path is None:
                self._compose_single(chunk, items[0])
                continue
            try:
                pdf = self._convert(path)
                parts = split_letters(pdf, count=len(items), metadata=[letter_metadata(i.prepared) for i in items])
                chunk.composed += [(i.row_no, ComposedLetter(prepared=i.prepared, pdf=part.pdf, pages=part.pages))
                                   for i, part in zip(items, parts, strict=True)]
            except (ComposeError, ConversionError):
                log.warning("batch %s: a chunk of %d letters did not convert; converting them one by one",
                            self.batch_id, len(items))
                for item in self._singles(chunk, items):
                    self._compose_single(chunk, item[1][0])
            finally:
                path.unlink(missing_ok=True)
                path.with_suffix(".pdf").unlink(missing_ok=True)
        return chunk

    def _convert(self, path: Path) -> Path:
        while True:
            try:
                return self.pool.convert(path, pdfa=True)  # type: ignore[return-value]
            except PoolBusyError:
                if self.stop.is_set():
                    raise
                time.sleep(BUSY_WAIT_S)  # API letters share the converters; wait for a free one

    def _compose_single(self, chunk: Chunk, item: Item) -> None:
        while True:
            try:
                chunk.composed.append((item.row_no, compose_letter(item.prepared)))
                return
            except PoolBusyError:
                if self.stop.is_set():
                    raise
                time.sleep(BUSY_WAIT_S)
            except (ComposeError, ConversionError) as exc:  # this letter crashes or stalls LibreOffice
                chunk.failed[item.row_no] = exc.detail
                return

    # archiving: one transaction per chunk, under the lease

    def _archive(self, chunk: Chunk) -> None:
        composed = sorted(chunk.composed, key=lambda pair: pair[0])
        with transaction(self.engine) as session:
            # A row that already has its letter keeps it (a second would break the unique (batch, row) and
            # stop the runner); it was counted when its letter was made.
            made = dict(session.execute(select(Letter.batch_row, Letter.id).where(
                Letter.batch_id == self.batch_id, Letter.batch_row.in_([r for r, _c in composed]))).all())
            fresh = [(r, c) for r, c in composed if r not in made]
            self._renew(session, done=len(fresh), failed=len(chunk.failed), pages=sum(c.pages for _r, c in fresh))
            try:
                with session.begin_nested():
                    ids = archive_letters(session, actor=self.actor, composed=[c for _r, c in fresh],
                                          batch_id=self.batch_id, batch_rows=[r for r, _c in fresh])
                done = list(zip((r for r, _c in fresh), ids, strict=True))
            except RepositoryError:
                done = self._archive_one_by_one(session, chunk, fresh)
            done += list(made.items())
            if done:
                session.execute(update(LetterBatchRow), [
                    {"batch_id": self.batch_id, "row_no": row_no, "state": ROW_DONE, "letter_id": letter_id,
                     "error": None} for row_no, letter_id in done])
            if chunk.failed:
                session.execute(update(LetterBatchRow), [
                    {"batch_id": self.batch_id, "row_no": row_no, "state": ROW_FAILED, "error": error[:2000]}
                    for row_no, error in sorted(chunk.failed.items())])
        if self.on_progress is not None:
            self.on_progress(self.progress())

    def _archive_one_by_one(self, session: Session, chunk: Chunk,
                            composed: list[tuple[int, ComposedLetter]]) -> list[tuple[int, str]]:
        done = []
        for row_no, letter in composed:
            try:
                with session.begin_nested():
                    (letter_id,) = archive_letters(session, actor=self.actor, composed=[letter],
                                                   batch_id=self.batch_id, batch_rows=[row_no])
                done.append((row_no, letter_id))
            except RepositoryError as exc:
                chunk.failed[row_no] = exc.detail
        # The counts were renewed for the whole chunk before; move the rows that failed here.
        moved = len(composed) - len(done)
        if moved:
            session.execute(update(LetterBatch).where(LetterBatch.id == self.batch_id).values(
                rows_done=LetterBatch.rows_done - moved, rows_failed=LetterBatch.rows_failed + moved))
        return done

    def _renew(self, session: Session, *, done: int = 0, failed: int = 0, pages: int = 0) -> None:
        """Renew the lease and add this chunk's counts, in the chunk's transaction; LeaseLostError if it is gone."""
        now = utcnow()
        result = session.execute(update(LetterBatch).where(
            LetterBatch.id == self.batch_id, LetterBatch.lease_owner == self.owner,
            LetterBatch.status == BATCH_RUNNING).values(
            lease_until=now + dt.timedelta(seconds=self.settings.batch_lease_seconds), updated_at=now,
            rows_done=LetterBatch.rows_done + done, rows_failed=LetterBatch.rows_failed + failed,
            pages=LetterBatch.pages + pages))
        if result.rowcount != 1:
            raise LeaseLostError(f"batch {self.batch_id} is no longer held by this runner")

    def _finish(self) -> Progress:
        with transaction(self.engine) as session:
            self._renew(session)
            batch = session.get(LetterBatch, self.batch_id, populate_existing=True)
            left = session.execute(select(LetterBatchRow.row_no).where(
                LetterBatchRow.batch_id == self.batch_id, LetterBatchRow.state == ROW_PENDING).limit(1)).first()
            if left is not None:  # rows made pending again behind the cursor (by hand): run the batch again
                batch.lease_owner, batch.lease_until, batch.status = None, None, BATCH_QUEUED
                return progress_from(batch)
            batch.status, batch.finished_at = BATCH_COMPLETED, utcnow()
            batch.lease_owner, batch.lease_until = None, None
            audit.record(session, actor=self.actor.username, action=names.BATCH_COMPLETED,
                         object_type="letter_batch", object_id=batch.id,
                         details={"rows": batch.rows_total, "letters": batch.rows_done, "failed": batch.rows_failed,
                                  "pages": batch.pages, "runs": batch.runs})
            events.emit(session, names.BATCH_COMPLETED, {"batch_id": batch.id, "letters": batch.rows_done,
                                                         "failed": batch.rows_failed})
            progress = progress_from(batch)
        if self.on_progress is not None:
            self.on_progress(progress)
        return progress

    def _release(self, reason: str | None, *, pause: bool = False, error: bool = False) -> None:
        """Give the batch back (queued) so a runner picks it up again: at once, or after a pause that grows with
        each failed run. A batch whose runs failed MAX_FAILED_RUNS times in a row is `failed` (with why)."""
        now = utcnow()
        with transaction(self.engine) as session:
            batch = session.execute(select(LetterBatch).where(
                LetterBatch.id == self.batch_id, LetterBatch.lease_owner == self.owner,
                LetterBatch.status == BATCH_RUNNING).with_for_update()).scalar_one_or_none()
            if batch is None:
                return
            batch.failed_runs = batch.failed_runs + 1 if error else 0
            batch.lease_owner, batch.last_error, batch.updated_at = None, reason, now
            batch.lease_until = now + _pause(batch.failed_runs or 1) if pause else None
            batch.status = BATCH_QUEUED
            if batch.failed_runs >= MAX_FAILED_RUNS:
                batch.status, batch.finished_at, batch.lease_until = BATCH_FAILED, now, None
                audit.record(session, actor=self.actor_name, action=names.BATCH_FAILED, object_type="letter_batch",
                             object_id=batch.id,
                             details={"runs": batch.runs, "error": reason, "letters": batch.rows_done})
                events.emit(session, names.BATCH_FAILED, {"batch_id": batch.id, "error": reason})

    def progress(self) -> Progress:
        """The batch's counts as committed."""
        return progress_of(self.batch_id, engine=self.engine)


def _pause(failed_runs: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(PAUSE_S * 2 ** (failed_runs - 1), MAX_PAUSE_S))


def _customers(session: Session, rows: list[LetterBatchRow]) -> dict[tuple[str, str], Customer]:
    ids = {r.customer_id for r in rows if r.customer_id}
    refs = {r.customer_ref for r in rows if r.customer_ref and not r.customer_id}
    found: dict[tuple[str, str], Customer] = {}
    if ids:
        found |= {("id", c.id): c for c in session.execute(select(Customer).where(Customer.id.in_(ids))).scalars()}
    if refs:
        found |= {("ref", c.external_ref): c for c in session.execute(
            select(Customer).where(Customer.external_ref.in_(refs))).scalars()}
    return found


def run_batches(engine: Engine, stop: threading.Event, *, poll_seconds: float = 2.0) -> None:
    """Run whatever batch is runnable, one after another, until `stop` is set."""
    owner = new_owner()

    def step() -> int:
        batch_id = claim_next(engine, owner=owner)
        if batch_id is None:
            return 0
        progress = BatchRunner(batch_id, owner=owner, engine=engine, stop=stop).run()
        return 1 if progress.status == BATCH_COMPLETED else 0  # a paused batch must not spin the loop

    events.poll_until_stopped(step, stop, poll_seconds=poll_seconds, what="batch run")
