"""Matching and ranking an FTS5 query: every matching rowid (for the total and facets) and the best matches by
bm25, the cost that grows with every match (FTS5 scores each match from its phrase instances and a length
lookup). On a large index the rowid range is split in two at an entry and the upper part matched and ranked on
a second core by a helper process with its own read-only connection. A process, not a thread: two threads in
one process contend on SQLite's memory mutex so badly that each half took longer than the whole (measured
131 ms a half against 98 ms for one query; in two processes, 67 ms a half). Both halves use the whole index's
statistics, so the merged list is the same as one query's.

The helper is `python -m search._fts5_ranking`, one JSON line in and one out per request. It answers only from
the caller's snapshot: it reads in one transaction and compares the head of `search_fts_changes` (which every
insert, delete and indexed change moves) with the caller's; if the index moved on, the caller does that part
itself. It serves one query at a time: when it is busy, stale or failing, the query does both parts."""

from __future__ import annotations

import atexit
import heapq
import itertools
import json
import logging
import os
import select
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

log = logging.getLogger(__name__)

WEIGHTS = (4.0, 1.0, 0.0)  # title, body, tags: the filter tokens never add to the score
BM25 = "bm25(search_fts, " + ", ".join(map(str, WEIGHTS)) + ")"
SPLIT_AT = 20_000  # entries; a smaller index is matched in one query: the hand-off costs more than it saves
HELPER_SHARE = 0.47  # of the index, for the helper: it also pays for the hand-off (~8 ms at 18,000 matches)
HELPER_TIMEOUT = 10.0  # seconds; a helper slower than this is replaced
RETRY_AFTER = 60.0  # seconds without a helper after one failed
_LAST = 2**63 - 1
_BEST = (f"SELECT rowid, {BM25} AS s FROM search_fts WHERE search_fts MATCH ? AND rowid BETWEEN ? AND ? "
         "ORDER BY s, rowid LIMIT ?")
_HEAD = "SELECT coalesce((SELECT max(seq) FROM search_fts_changes), 0)"


def matches(conn: sqlite3.Connection, match: str, low: int = 0, high: int = _LAST) -> np.ndarray:
    """The rowids in [low, high] that match, ascending."""
    return np.fromstring(_listed(conn, match, low, high), dtype=np.int64, sep=",")


def _listed(conn: sqlite3.Connection, match: str, low: int, high: int) -> str:
    # One string of every rowid: far cheaper than a row per match.
    return conn.execute("SELECT group_concat(rowid) FROM search_fts WHERE search_fts MATCH ? "
                        "AND rowid BETWEEN ? AND ?", (match, low, high)).fetchone()[0] or ""


def best(conn: sqlite3.Connection, match: str, rowids: np.ndarray, count: int) -> list[tuple[int, float]]:
    """The `count` best (rowid, score) among `rowids` (the matches, ascending), best first; ties by rowid."""
    return _scores(conn, match, int(rowids[0]), int(rowids[-1]), count) if len(rowids) else []


def best_among(conn: sqlite3.Connection, match: str, kept: set[int], count: int) -> list[tuple[int, float]]:
    """The `count` best of the matches in `kept`, when a filter applied outside FTS5 left some out."""
    every = conn.execute(f"SELECT rowid, {BM25} FROM search_fts WHERE search_fts MATCH ?", (match,))
    return heapq.nsmallest(count, ((r, -s) for r, s in every if r in kept), key=_best_first)


def matches_and_best(conn: sqlite3.Connection, database: str | None, seq: int, match: str, middle: int | None,
                     count: int) -> tuple[np.ndarray, list[tuple[int, float]]]:
    """Every matching rowid and the `count` best, as of the change log's position `seq` (the snapshot `conn`
    reads), with the rowids from `middle` up done by the helper process when there is a middle, a database file
    and a free helper."""
    if middle is None or not database or database == ":memory:" or not _HELPER.claim():
        rowids = matches(conn, match)
        return rowids, best(conn, match, rowids, count)
    try:
        sent = _HELPER.send({"database": os.path.abspath(database), "seq": seq, "match": match, "low": middle,
                             "high": _LAST, "count": count})
        lower = matches(conn, match, 0, middle - 1)
        lower_best = best(conn, match, lower, count)
        answer = _HELPER.receive() if sent else None
    finally:
        _HELPER.release()
    if answer is None:
        upper = matches(conn, match, middle, _LAST)
        upper_best = best(conn, match, upper, count)
    else:
        upper, upper_best = answer
    merged = heapq.nsmallest(count, lower_best + upper_best, key=_best_first)
    return np.concatenate((lower, upper)), merged


def _best_first(scored: tuple[int, float]) -> tuple[float, int]:
    return -scored[1], scored[0]


def _scores(conn: sqlite3.Connection, match: str, low: int, high: int, count: int) -> list[tuple[int, float]]:
    return [(rowid, -s) for rowid, s in conn.execute(_BEST, (match, low, high, count))]


class _Helper:
    """The helper process of this process, started on first use."""

    def __init__(self) -> None:
        self._busy = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._ids = itertools.count(1)
        self._waiting: int | None = None
        self._retry_at = 0.0

    def claim(self) -> bool:
        if time.monotonic() < self._retry_at:
            return False
        return self._busy.acquire(blocking=False)

    def release(self) -> None:
        if self._waiting is not None:  # a request is left without its answer: the next one would read it
            self.stop()
            self._waiting = None
        self._busy.release()

    def send(self, request: dict[str, Any]) -> bool:
        try:
            if self._process is None or self._process.poll() is not None:
                self._process = subprocess.Popen(  # noqa: S603 - our own module, no shell
                    [sys.executable, "-m", "search._fts5_ranking"], cwd=Path(__file__).resolve().parents[1],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            assert self._process.stdin is not None
            self._waiting = next(self._ids)
            self._process.stdin.write(json.dumps({**request, "id": self._waiting}) + "\n")
            self._process.stdin.flush()
            return True
        except OSError as exc:
            self._fail(f"could not start or reach it: {exc}")
            return False

    def receive(self) -> tuple[np.ndarray, list[tuple[int, float]]] | None:
        """The answer to the last request; None when the caller must do that part itself."""
        assert self._process is not None and self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], HELPER_TIMEOUT)
        line = self._process.stdout.readline() if ready else ""
        answer: Any = None
        try:
            answer = json.loads(line) if line else {"error": f"no answer within {HELPER_TIMEOUT:g} s"}
            if answer.get("id") != self._waiting:
                raise ValueError(f"an answer to request {answer.get('id')}, not {self._waiting}")
            if answer.get("stale"):
                return None  # the index moved on since the caller's snapshot
            rowids = np.fromstring(answer["rowids"], dtype=np.int64, sep=",")
            return rowids, [(int(rowid), float(score)) for rowid, score in answer["best"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._fail(str(answer.get("error", exc)) if isinstance(answer, dict) else str(exc))
            return None
        finally:
            self._waiting = None

    def _fail(self, why: str) -> None:
        log.warning("the search ranking helper failed (%s); queries score both halves themselves for %g s",
                    why, RETRY_AFTER)
        self._retry_at = time.monotonic() + RETRY_AFTER
        self.stop()

    def stop(self) -> None:
        """Stop the helper process (it is started again when needed)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def after_fork(self) -> None:
        """In a forked child: the parent's helper, its pipes and a held lock are not this process's."""
        if self._process is not None:
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    pipe.close()
        self._process, self._busy, self._waiting = None, threading.Lock(), None


_HELPER = _Helper()
atexit.register(_HELPER.stop)
os.register_at_fork(after_in_child=_HELPER.after_fork)


def _answer(conn: sqlite3.Connection, request: dict[str, Any]) -> dict[str, Any]:
    conn.execute("BEGIN")
    try:
        if conn.execute(_HEAD).fetchone()[0] != request["seq"]:
            return {"stale": True}
        listed = _listed(conn, request["match"], request["low"], request["high"])
        first, last = listed.split(",", 1)[0], listed.rsplit(",", 1)[-1]
        scored = _scores(conn, request["match"], int(first), int(last), request["count"]) if listed else []
        return {"rowids": listed, "best": scored}
    finally:
        conn.execute("ROLLBACK")


def _serve() -> None:
    """The helper's loop: match and rank the requested range until stdin closes."""
    conn: sqlite3.Connection | None = None
    database = None
    for line in sys.stdin:
        request: dict[str, Any] = {}
        try:
            request = json.loads(line)
            if request["database"] != database:
                if conn is not None:
                    conn.close()
                conn = sqlite3.connect(f"file:{quote(request['database'])}?mode=ro", uri=True,
                                       isolation_level=None)
                conn.execute("PRAGMA mmap_size=268435456")
                database = request["database"]
            answer = _answer(conn, request)
        except (ValueError, KeyError, sqlite3.Error) as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps({**answer, "id": request.get("id")}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
