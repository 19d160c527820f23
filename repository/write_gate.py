"""A gate in front of SQLite's write lock, so that waiting writers start the moment the lock is free.

Why: SQLite makes a writer that finds the database locked sleep in growing steps (1, 2, 5 ... 100 ms, its busy
handler), and nothing wakes it when the lock is released. With several request threads writing at once the lock
sat idle most of the time: 4 clients uploading through one `postroom serve` managed 25-28 documents/s while one
thread alone managed 89/s. Writers now queue here first: threads of one process on a lock that wakes the next
at once, processes (`serve --workers N`, `postroom worker`) on an advisory file lock polled every few hundred
microseconds. Whoever holds the gate then finds SQLite's own lock free; SQLite's locking stays the rule, the gate
only decides who asks next.

A connection takes the gate for a write transaction (BEGIN IMMEDIATE) and gives it back when the transaction
ends: after COMMIT or ROLLBACK has returned, or when the connection closes. Like SQLite's busy timeout, waiting
longer than the timeout raises "database is locked".
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import weakref
from typing import Any

_POLL_MIN, _POLL_MAX = 0.0002, 0.002
# Weak: a gate lives as long as a connection to its database does (each holds its gate), then its file closes.
_gates: weakref.WeakValueDictionary[tuple[int, str], WriteGate] = weakref.WeakValueDictionary()
_gates_lock = threading.Lock()


class WriteGate:
    """Orders the write transactions on one database file across this process's threads and other processes."""

    def __init__(self, database: str) -> None:
        self._threads = threading.Lock()
        self._file: int | None = None
        if not _not_a_file(database):
            try:
                self._file = os.open(f"{database}-writegate", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:  # a read-only directory: other processes are left to SQLite's busy handler
                self._file = None

    def acquire(self, timeout: float) -> None:
        """Wait until no other writer holds the gate; sqlite3.OperationalError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            raise sqlite3.OperationalError("database is locked")
        if self._file is None:
            return
        pause = _POLL_MIN
        while True:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self._threads.release()
                    raise sqlite3.OperationalError("database is locked") from None
                time.sleep(pause)
                pause = min(pause * 2, _POLL_MAX)
            except BaseException:
                self._threads.release()
                raise

    def release(self) -> None:
        """Let the next writer in."""
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        self._threads.release()

    def __del__(self) -> None:
        if getattr(self, "_file", None) is not None:
            os.close(self._file)


def gate_for(database: str) -> WriteGate:
    """The gate of a database file in this process (a forked child gets its own)."""
    key = (os.getpid(), database if _not_a_file(database) else os.path.realpath(database))
    with _gates_lock:
        gate = _gates.get(key)
        if gate is None:
            gate = _gates[key] = WriteGate(key[1])
        return gate


def _not_a_file(database: str) -> bool:
    # In-memory databases and URIs ("file:...?mode=ro") get the threads' lock only.
    return database in ("", ":memory:") or database.startswith("file:")


class GatedConnection(sqlite3.Connection):
    """A sqlite3 connection that holds its database's write gate from `begin_write` to the end of the transaction."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._gate = gate_for(os.fsdecode(database))
        self._timeout = float(kwargs.get("timeout", 5.0))
        self._holding = False

    def begin_write(self) -> None:
        """Take the write gate, then start a write transaction (BEGIN IMMEDIATE)."""
        self._gate.acquire(self._timeout)
        self._holding = True
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._let_go()
            raise

    def commit(self) -> None:
        """Commit, then let the next writer in."""
        try:
            super().commit()
        finally:
            self._let_go()

    def rollback(self) -> None:
        """Roll back, then let the next writer in."""
        try:
            super().rollback()
        finally:
            self._let_go()

    def close(self) -> None:
        """Close (SQLite rolls back an open transaction) and let the next writer in."""
        try:
            super().close()
        finally:
            self._let_go()

    def __del__(self) -> None:
        # A connection dropped without close() must not keep every other writer out.
        self._let_go()

    def _let_go(self) -> None:
        if getattr(self, "_holding", False):
            self._holding = False
            self._gate.release()
