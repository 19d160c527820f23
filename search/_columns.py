"""Facet columns of the embedded index held in memory, one slot per FTS5 rowid (as doc values in Lucene): the
type, year, customer and creation time of every indexed entry, so facets and date order over tens of thousands of
matches are array operations instead of a row lookup each in SQLite.

The columns follow `search_fts_changes`, which triggers append to on every insert, delete and change of an
indexed or facet field (migration 0014). Each query first applies the log up to its own snapshot, so the log's
head also names the snapshot's state of the index. When the log was pruned past what a process has applied, it
reloads the columns.
A query whose snapshot is older than the columns (another thread applied newer changes) gets StaleColumnsError and takes
the SQL path instead, so counts are always those of the query's own snapshot."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable

import numpy as np

KEEP_CHANGES = 100_000  # log rows the indexer keeps: a process more changes behind than this reloads
# Stored as 'YYYY-MM-DD HH:MM:SS.ffffff'; the seconds are taken without the fraction, which strftime would round.
_FIELDS = ("e.document_type_id, e.year, e.customer_id, "
           "CAST(strftime('%s', substr(e.created_at, 1, 19)) AS INTEGER) * 1000000"
           " + CAST(substr(e.created_at, 21, 6) AS INTEGER)")
_LOAD = f"SELECT e.id, {_FIELDS} FROM search_entries e"
# A deleted entry comes back with NULLs: its slot is cleared.
_CHANGED = (f"SELECT c.entry_id, {_FIELDS} FROM search_fts_changes c "
            "LEFT JOIN search_entries e ON e.id = c.entry_id WHERE c.seq > ? AND c.seq <= ? ORDER BY c.seq")
_MIN, _MAX = np.iinfo(np.int64).min, np.iinfo(np.int64).max


class StaleColumnsError(Exception):
    """The columns are not those of the caller's snapshot."""


class _Codes:
    """Small integer codes for ids (0 = none), so a column is a plain integer array."""

    def __init__(self) -> None:
        self.ids: list[str | None] = [None]
        self._codes: dict[str, int] = {}

    def code(self, value: str | None) -> int:
        if value is None:
            return 0
        found = self._codes.get(value)
        if found is None:
            found = self._codes[value] = len(self.ids)
            self.ids.append(value)
        return found


class FacetColumns:
    """The columns for one database; `sync` before reading, with the connection of the query's transaction."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seq = -1
        self._type = np.zeros(0, np.uint32)      # 0 = no entry
        self._year = np.zeros(0, np.uint16)
        self._customer = np.zeros(0, np.uint32)  # 0 = none
        self._created = np.zeros(0, np.int64)    # microseconds since the epoch, UTC
        self._types = _Codes()
        self._customers = _Codes()
        self._present_ids = np.zeros(0, np.int64)
        self._present_at = -1

    def sync(self, conn: sqlite3.Connection) -> int:
        """Apply the change log up to the snapshot `conn` reads and return its position; StaleColumnsError if
        the columns are already newer."""
        # Two subqueries: min() and max() side by side in one SELECT would scan the whole log.
        floor, head = conn.execute("SELECT coalesce((SELECT min(seq) FROM search_fts_changes), 0), "
                                   "coalesce((SELECT max(seq) FROM search_fts_changes), 0)").fetchone()
        with self._lock:
            if head == self.seq:
                return head
            if head < self.seq:
                raise StaleColumnsError
            if self.seq < 0 or floor > self.seq + 1:  # first use, or the log was pruned past what we applied
                for name in ("_type", "_year", "_customer", "_created"):
                    setattr(self, name, np.zeros(0, getattr(self, name).dtype))
                self._types, self._customers = _Codes(), _Codes()
                self._apply(conn.execute(_LOAD))
            else:
                self._apply(conn.execute(_CHANGED, (self.seq, head)))
            self.seq = head
            return head

    def _apply(self, rows: Iterable[tuple[int, str, int, str | None, int]]) -> None:
        latest = {rowid: values for rowid, *values in rows}  # an entry logged twice: its last row wins
        if not latest:
            return
        size = max(latest) + 1
        if size > len(self._type):
            size = max(size, len(self._type) * 3 // 2)
            for name in ("_type", "_year", "_customer", "_created"):
                old = getattr(self, name)
                grown = np.zeros(size, old.dtype)
                grown[:len(old)] = old
                setattr(self, name, grown)
        at = np.fromiter(latest, np.int64, len(latest))
        values = latest.values()
        self._type[at] = [self._types.code(v[0]) for v in values]
        self._year[at] = [v[1] or 0 for v in values]
        self._customer[at] = [self._customers.code(v[2]) for v in values]
        self._created[at] = [v[3] or 0 for v in values]

    def entries(self, seq: int) -> int:
        """How many entries there are."""
        return len(self._present(seq))

    def split(self, seq: int, share: float) -> int:
        """The rowid above which lie about `share` of the entries."""
        present = self._present(seq)
        return int(present[min(int(len(present) * (1 - share)), len(present) - 1)]) if len(present) else 0

    def _present(self, seq: int) -> np.ndarray:
        with self._lock:
            if self.seq != seq:
                raise StaleColumnsError
            if self._present_at != seq:
                self._present_ids, self._present_at = np.flatnonzero(self._type), seq
            return self._present_ids

    def _check(self, seq: int, rowids: np.ndarray) -> None:
        # rowids come from FTS5 in ascending order, so the last one is the largest.
        if self.seq != seq or (len(rowids) and rowids[-1] >= len(self._type)):
            raise StaleColumnsError

    def facets(self, seq: int, rowids: np.ndarray, customers: int) -> dict[str, dict[str, int]]:
        """Counts by type id, by year (newest first) and of the `customers` most frequent customers, as of log
        position `seq`; StaleColumnsError if the columns moved on or a rowid has none."""
        with self._lock:
            self._check(seq, rowids)
            types = np.bincount(self._type[rowids])
            years = np.bincount(self._year[rowids])
            by_customer = np.bincount(self._customer[rowids])
            # The id lists only grow (a reload makes new ones), so these references stay valid without a copy.
            type_ids, customer_ids = self._types.ids, self._customers.ids
        if len(types) and types[0]:
            raise StaleColumnsError  # a match without columns: written after the snapshot the columns follow
        if len(by_customer):
            by_customer[0] = 0
        top = np.flatnonzero(by_customer)
        if len(top) > customers:
            floor = np.partition(by_customer[top], len(top) - customers)[len(top) - customers]
            top = top[by_customer[top] >= floor]
        ranked = sorted(top.tolist(), key=lambda code: (-int(by_customer[code]), customer_ids[code]))[:customers]
        return {"document_type": {type_ids[code]: int(types[code]) for code in np.flatnonzero(types)},
                "year": {str(year): int(years[year]) for year in np.flatnonzero(years)[::-1]},
                "customer": {customer_ids[code]: int(by_customer[code]) for code in ranked}}

    def created_between(self, seq: int, rowids: np.ndarray, start: int | None, end: int | None) -> np.ndarray:
        """The rowids created in [start, end) (microseconds since the epoch; None = unbounded)."""
        with self._lock:
            self._check(seq, rowids)
            created = self._created[rowids]
        low, high = _MIN if start is None else start, _MAX if end is None else end
        return rowids[(created >= low) & (created < high)]

    def newest(self, seq: int, rowids: np.ndarray, count: int, oldest: bool = False) -> list[int]:
        """The `count` most recently created rowids (or the oldest), ties broken by rowid the same way."""
        with self._lock:
            self._check(seq, rowids)
            created = self._created[rowids]
        order = np.lexsort((rowids, created))
        chosen = order[:count] if oldest else order[::-1][:count]
        return rowids[chosen].tolist()


_COLUMNS: dict[str, FacetColumns] = {}
_REGISTRY = threading.Lock()


def columns_for(database: str) -> FacetColumns:
    """The process's columns for a database (by its URL)."""
    with _REGISTRY:
        found = _COLUMNS.get(database)
        if found is None:
            found = _COLUMNS[database] = FacetColumns()
        return found


def forget() -> None:
    """Drop every database's columns (tests, and after a database is replaced)."""
    with _REGISTRY:
        _COLUMNS.clear()


def _after_fork() -> None:
    # A lock another thread held at the fork would never be released in the child.
    global _REGISTRY
    _REGISTRY = threading.Lock()
    _COLUMNS.clear()


os.register_at_fork(after_in_child=_after_fork)
