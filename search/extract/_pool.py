"""Warm worker processes that run extractors with a hard time limit; a worker that overruns is killed and replaced.

Workers come from a forkserver (never a fork of the threaded server) that has the extractor libraries preloaded,
so a replacement starts in milliseconds. Each worker handles one file at a time over a pipe.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from multiprocessing.context import BaseContext

from search.extract import _worker
from search.extract._sink import Options

PRELOAD = ["search.extract._worker", "search.extract._text", "search.extract._html", "search.extract._xml",
           "search.extract._email", "search.extract._docx", "search.extract._pdf"]
MAX_CALLS_PER_WORKER = 500  # recycle now and then: parsers keep caches, damaged files leak


class _Worker:
    def __init__(self, ctx: BaseContext) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker.serve, args=(child,), name="postroom-extract", daemon=True)
        self.process.start()
        child.close()
        self.calls = 0

    def stop(self, *, kill: bool) -> None:
        if kill:
            self.process.kill()
        self.conn.close()  # a live worker sees EOF and returns
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


class Pool:
    """At most `size` extractions at once; callers beyond that wait for a free worker."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._ctx = _context()

    def run(self, path: str, target: str, options: Options, timeout_s: float) -> _worker.Result:
        """Extract the file at path in a worker; (text, status, error)."""
        with self._slots:
            worker = self._take()
            try:
                try:
                    worker.conn.send((path, target, options))
                except OSError:  # it died while idle (OOM killer, operator): not this file's fault
                    worker.stop(kill=True)
                    worker = _Worker(self._ctx)
                    worker.conn.send((path, target, options))
                if not worker.conn.poll(timeout_s):
                    worker.stop(kill=True)
                    return "", "timeout", f"extraction took longer than {timeout_s:g} s"
                result = worker.conn.recv()
            except (EOFError, OSError):
                worker.stop(kill=True)
                return "", "failed", f"the extraction process ended unexpectedly (exit code {worker.process.exitcode})"
            except BaseException:
                worker.stop(kill=True)
                raise
            self._give_back(worker)
            return result

    def warm_up(self) -> None:
        """Start one worker now, so the first document does not pay for the forkserver's start."""
        with self._slots:
            self._give_back(self._take(), count=False)

    def close(self) -> None:
        """Stop the idle workers."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop(kill=False)

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.is_alive():
                    return worker
                worker.stop(kill=True)
        return _Worker(self._ctx)

    def _give_back(self, worker: _Worker, *, count: bool = True) -> None:
        worker.calls += int(count)
        if worker.calls >= MAX_CALLS_PER_WORKER:
            worker.stop(kill=False)
            return
        with self._lock:
            self._idle.append(worker)


def _context() -> BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)  # only takes effect if the forkserver is not running yet
        return ctx
    return multiprocessing.get_context("spawn")


_pool: Pool | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def get_pool() -> Pool:
    """The process's pool (a forked child gets its own, never its parent's workers)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = Pool(max(1, min(4, os.cpu_count() or 1)))
            _pool_pid = os.getpid()
        return _pool


def close_pool() -> None:
    """Stop this process's idle workers (tests, shutdown)."""
    with _pool_lock:
        pool = _pool
    if pool is not None and _pool_pid == os.getpid():
        pool.close()

