"""A pool of warm unoserver processes that Postroom starts and supervises, with a bounded queue.

Decisions:
- Admission: at most `workers + max_queue` callers are inside `convert` at once; one more gets PoolBusyError
  at once (HTTP 503 with Retry-After) instead of piling up work.
- A worker is replaced after `max_conversions` conversions (LibreOffice grows and leaks over time), when it
  dies (found on use or by the supervisor thread's health check) and when a conversion times out. A
  replacement runs in the background; callers wait for the next ready worker.
- A conversion that fails because its worker died is retried on a fresh worker (`retries` times). A timeout is
  not retried (the document is the likely cause and a retry would double the wait): ConversionError. A
  document LibreOffice refuses is not retried: UnconvertibleDocumentError (422).
- `convert(Path)` converts on the shared filesystem and writes `<name>.pdf` next to the input, returning that
  path (for big batch files: no megabytes through XML-RPC); `convert(bytes)` returns the PDF's bytes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

from output.compose._worker import (
    DocumentRefusedError,
    Worker,
    WorkerDiedError,
    WorkerTimeoutError,
    find_soffice,
    server_pythonpath,
)
from output.compose.office_profile import find_allocator
from output.errors import ConversionError, PoolBusyError, ServiceUnavailableError, UnconvertibleDocumentError

log = logging.getLogger(__name__)

# PDF/A-2b; Writer bookmarks become named destinations (the batch splitter finds letters by them).
PDFA_OPTIONS = ["SelectPdfVersion=2", "ExportBookmarks=true", "ExportBookmarksToPDFDestination=true",
                "UseTaggedPDF=false"]
PLAIN_OPTIONS = ["SelectPdfVersion=0", "ExportBookmarks=true", "ExportBookmarksToPDFDestination=true"]
HEALTH_INTERVAL_S = 5.0


class ConverterPool:
    """Warm LibreOffice converters behind a bounded queue; thread-safe."""

    def __init__(self, *, workers: int, max_queue: int, max_conversions: int, timeout_s: float, port_base: int,
                 soffice: str | None = None, python: str | None = None, retries: int = 2,
                 allocator: str = "auto") -> None:
        if workers < 1 or max_queue < 0 or max_conversions < 1 or timeout_s <= 0:
            raise ValueError("workers and max_conversions must be >= 1, max_queue >= 0, timeout_s > 0")
        self.workers = workers
        self.max_queue = max_queue
        self.max_conversions = max_conversions
        self.timeout_s = timeout_s
        self.port_base = port_base
        self.retries = retries
        self._preload = find_allocator(allocator)  # ValueError for a missing library, like the other arguments
        self._soffice = soffice
        self._python = python or "/usr/bin/python3"
        self._admit = threading.BoundedSemaphore(workers + max_queue)
        self._idle: queue.Queue[Worker] = queue.Queue()
        self._all: list[Worker] = []
        self._lock = threading.Lock()
        self._runtime: Path | None = None
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._restarting: set[int] = set()
        self.started = False

    # life cycle

    def start(self) -> None:
        """Start every worker (in parallel) and wait until each answers; idempotent."""
        with self._lock:
            if self.started:
                return
            soffice = find_soffice(self._soffice)
            if soffice is None:
                raise ServiceUnavailableError("LibreOffice (soffice) is not installed; run ops/libreoffice.sh",
                                              retry_after=60)
            if shutil.which(self._python) is None and not Path(self._python).exists():
                raise ServiceUnavailableError(f"the UNO Python {self._python} is missing; run ops/libreoffice.sh",
                                              retry_after=60)
            self._runtime = Path(tempfile.mkdtemp(prefix="postroom-uno-"))
            server_pythonpath(self._runtime)
            self._stopping.clear()
            self._all = [Worker(index=i, port=self.port_base + 2 * i, runtime=self._runtime, soffice=soffice,
                                python=self._python, allocator=self._preload) for i in range(self.workers)]
            errors: list[BaseException] = []

            def boot(worker: Worker) -> None:
                try:
                    worker.start()
                except BaseException as exc:  # collected and raised below with every worker stopped
                    errors.append(exc)

            threads = [threading.Thread(target=boot, args=(w,), daemon=True) for w in self._all]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                for w in self._all:
                    w.stop()
                shutil.rmtree(self._runtime, ignore_errors=True)
                raise ServiceUnavailableError(f"the converter pool did not start: {errors[0]}", retry_after=30)
            for w in self._all:
                self._idle.put(w)
            self._supervisor = threading.Thread(target=self._supervise, name="uno-supervisor", daemon=True)
            self._supervisor.start()
            self.started = True

    def stop(self) -> None:
        """Stop every worker and remove the pool's scratch directory."""
        with self._lock:
            self._stopping.set()
            if self._supervisor is not None:
                self._supervisor.join(timeout=HEALTH_INTERVAL_S + 5)
            for w in self._all:
                w.stop()
            while not self._idle.empty():
                self._idle.get_nowait()
            if self._runtime is not None:
                shutil.rmtree(self._runtime, ignore_errors=True)
            self._all, self._runtime, self.started = [], None, False

    def health(self) -> dict:
        """Per worker: pid, LibreOffice pid, port, conversions since start, total, restarts, alive, state."""
        idle = {id(w) for w in list(self._idle.queue)}
        workers = []
        for w in list(self._all):
            state = "restarting" if w.index in self._restarting else ("idle" if id(w) in idle else "busy")
            workers.append({"index": w.index, "pid": w.pid, "soffice_pid": w.soffice_pid(), "port": w.port,
                            "conversions": w.conversions, "total_conversions": w.total_conversions,
                            "restarts": w.restarts, "alive": w.alive(), "state": state})
        return {"started": self.started, "workers": workers, "idle": len(idle),
                "capacity": self.workers + self.max_queue}

    # conversion

    def convert(self, docx: bytes | Path, *, pdfa: bool = True, timeout_s: float | None = None) -> bytes | Path:
        """DOCX to PDF on a warm worker; bytes in -> PDF bytes, Path in -> Path of `<stem>.pdf` beside it."""
        if not self._admit.acquire(blocking=False):
            raise PoolBusyError(f"all {self.workers} converters are busy and {self.max_queue} conversions are "
                                "waiting; retry shortly", retry_after=self._retry_after())
        try:
            self.start()
            return self._convert(docx, pdfa=pdfa, timeout_s=timeout_s or self.timeout_s)
        finally:
            self._admit.release()

    def _retry_after(self) -> int:
        return max(1, min(60, round(self.timeout_s / 10)))

    def _convert(self, docx: bytes | Path, *, pdfa: bool, timeout_s: float) -> bytes | Path:
        options = PDFA_OPTIONS if pdfa else PLAIN_OPTIONS
        if isinstance(docx, Path):
            inpath = docx.resolve()
            outpath = inpath.with_suffix(".pdf")
            indata = None
        else:
            inpath = outpath = None
            indata = bytes(docx)
        failures: list[str] = []
        for _attempt in range(self.retries + 1):
            worker = self._checkout()
            # A fresh output name per attempt: a LibreOffice killed mid-export leaves its lock file behind.
            target = outpath.with_name(f".{outpath.stem}.{uuid.uuid4().hex}.pdf") if outpath else None
            done = False
            try:
                result = worker.convert(indata=indata, inpath=inpath, outpath=target, options=options,
                                        timeout_s=timeout_s)
                done = True
            except WorkerDiedError as exc:
                log.warning("converter %s died during a conversion; replacing it and retrying: %s", worker.index, exc)
                failures.append(str(exc))
                self._replace(worker)
                continue
            except WorkerTimeoutError as exc:
                log.warning("conversion on converter %s timed out; replacing it", worker.index)
                self._replace(worker)
                raise ConversionError(f"the conversion took longer than {timeout_s:g} s and was stopped",
                                      retry_after=self._retry_after()) from exc
            except DocumentRefusedError as exc:
                self._checkin(worker)
                reason = _last_line(str(exc))
                raise UnconvertibleDocumentError(f"LibreOffice cannot convert the document: {reason}") from exc
            finally:
                if target is not None:
                    _clean_up(target, keep=done)
            self._checkin(worker)
            if outpath is None:
                return result  # type: ignore[return-value]
            os.replace(target, outpath)  # type: ignore[arg-type]
            return outpath
        raise ConversionError(f"the conversion failed {len(failures)} times as converters died: {failures[-1]}",
                              retry_after=self._retry_after())

    def _checkout(self) -> Worker:
        """The next healthy idle worker, waiting while workers are busy or restarting."""
        deadline = time.monotonic() + self.timeout_s + 120
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stopping.is_set():
                raise ConversionError("no converter became available in time", retry_after=self._retry_after())
            try:
                worker = self._idle.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if worker.proc is not None and worker.proc.poll() is None:
                return worker
            self._replace(worker)

    def _checkin(self, worker: Worker) -> None:
        if worker.conversions >= self.max_conversions:
            self._replace(worker)
        else:
            self._idle.put(worker)

    def _replace(self, worker: Worker) -> None:
        """Restart the worker in the background; it rejoins the idle queue when it answers again."""
        with self._lock:
            if worker.index in self._restarting or self._stopping.is_set():
                return
            self._restarting.add(worker.index)
        threading.Thread(target=self._restart, args=(worker,), name=f"uno-restart-{worker.index}",
                         daemon=True).start()

    def _restart(self, worker: Worker) -> None:
        delay = 1.0
        try:
            while not self._stopping.is_set():
                try:
                    worker.restart()
                except Exception as exc:  # keep trying: a pool short of a worker is worse than a log line
                    log.error("converter %s failed to restart (retrying in %.0f s): %s", worker.index, delay, exc)
                    self._stopping.wait(delay)
                    delay = min(delay * 2, 30.0)
                    continue
                if self._stopping.is_set():
                    worker.stop()
                    return
                log.info("converter %s restarted (pid %s)", worker.index, worker.pid)
                self._idle.put(worker)
                return
        finally:
            with self._lock:
                self._restarting.discard(worker.index)

    def _supervise(self) -> None:
        """Health-check idle workers now and then: replace one whose process or LibreOffice is gone."""
        while not self._stopping.wait(HEALTH_INTERVAL_S):
            checked: list[Worker] = []
            while True:
                try:
                    worker = self._idle.get_nowait()
                except queue.Empty:
                    break
                healthy = worker.alive()
                if healthy:
                    with contextlib.suppress(WorkerDiedError, WorkerTimeoutError):
                        worker.ping(timeout_s=5.0)
                        checked.append(worker)
                        continue
                log.warning("converter %s failed its health check; replacing it", worker.index)
                self._replace(worker)
            for worker in checked:
                self._idle.put(worker)


def _clean_up(target: Path, *, keep: bool) -> None:
    """Remove LibreOffice's lock file, and the partial output of a failed attempt."""
    target.with_name(f".~lock.{target.name}#").unlink(missing_ok=True)
    if not keep:
        target.unlink(missing_ok=True)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "unknown error"


_pool: ConverterPool | None = None
_pool_lock = threading.Lock()


def get_pool() -> ConverterPool:
    """The process-wide pool, built from settings; its workers start on the first conversion."""
    global _pool
    with _pool_lock:
        if _pool is None:
            from repository.config import get_settings

            s = get_settings()
            _pool = ConverterPool(workers=s.uno_workers, max_queue=s.uno_max_queue,
                                  max_conversions=s.uno_max_conversions, timeout_s=s.uno_timeout_s,
                                  port_base=s.uno_port_base, soffice=s.soffice, python=s.uno_python,
                                  allocator=s.uno_allocator)
        return _pool


def reset_pool() -> None:
    """Stop and forget the process-wide pool (tests, shutdown)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.stop()

