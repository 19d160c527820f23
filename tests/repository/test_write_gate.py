"""The SQLite write gate: a writer waiting for another starts as soon as that one's transaction ends.

Without the gate SQLite's busy handler makes a waiting writer sleep in growing steps (up to 100 ms) and nobody
wakes it: a writer that waited half a second started 30-100 ms after the lock was free.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from repository.db import make_engine
from repository.write_gate import gate_for

HOLD = 0.44  # the busy handler would next look at 0.428 s (still held), then at 0.528 s
PROMPT = 0.025  # the busy handler's steps are 100 ms by then; the gate polls other processes every 2 ms at most


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "gate.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    engine.dispose()
    return path


def _write(engine, n: int) -> None:  # noqa: ANN001
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})


def test_a_writer_in_another_thread_starts_when_the_first_commits(db: Path) -> None:
    engine = make_engine(f"sqlite:///{db}")
    holding, released = threading.Event(), []

    def first() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            holding.set()
            time.sleep(HOLD)
        released.append(time.monotonic())

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait(5)
    _write(engine, 2)
    started = time.monotonic()
    thread.join()
    assert started - released[0] < PROMPT, f"the second writer started {started - released[0]:.3f} s late"
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(text("SELECT n FROM t ORDER BY rowid"))] == [1, 2]
    engine.dispose()


def test_a_writer_waits_for_a_rolled_back_transaction_then_goes_on(db: Path) -> None:
    engine = make_engine(f"sqlite:///{db}")
    holding = threading.Event()

    def failing() -> None:
        with pytest.raises(RuntimeError), engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            holding.set()
            time.sleep(0.1)
            raise RuntimeError("refused")

    thread = threading.Thread(target=failing)
    thread.start()
    holding.wait(5)
    _write(engine, 2)
    thread.join()
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(text("SELECT n FROM t"))] == [2]
    engine.dispose()


def test_a_writer_in_another_process_starts_when_the_first_commits(db: Path) -> None:
    holder = textwrap.dedent(f"""
        import sys, time
        from sqlalchemy import text
        from repository.db import make_engine
        engine = make_engine({f"sqlite:///{db}"!r})
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            print("holding", flush=True)
            time.sleep({HOLD})
        print(time.time(), flush=True)
    """)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", holder], cwd=root, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    engine = make_engine(f"sqlite:///{db}")
    _write(engine, 2)
    started = time.time()
    released = float(proc.stdout.readline())
    assert proc.wait(10) == 0
    assert started - released < PROMPT, f"the second writer started {started - released:.3f} s late"
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(text("SELECT n FROM t ORDER BY rowid"))] == [1, 2]
    engine.dispose()


def test_waiting_longer_than_the_timeout_says_the_database_is_locked(db: Path) -> None:
    gate = gate_for(str(db))
    gate.acquire(1)
    try:
        waiter = threading.Thread(target=lambda: errors.append(_try(gate)))
        errors: list[BaseException | None] = []
        waiter.start()
        waiter.join(5)
        assert isinstance(errors[0], sqlite3.OperationalError) and "locked" in str(errors[0])
    finally:
        gate.release()
    gate.acquire(0.1)  # free again once released
    gate.release()


def _try(gate) -> BaseException | None:  # noqa: ANN001
    try:
        gate.acquire(0.1)
    except sqlite3.OperationalError as exc:
        return exc
    gate.release()
    return None


def test_a_lock_file_that_cannot_be_opened_leaves_writes_to_sqlite_alone(tmp_path: Path) -> None:
    # A directory in its place cannot be opened for writing, even by root (as in a read-only directory).
    (tmp_path / "other.db-writegate").mkdir()
    engine = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    _write(engine, 1)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM t")).scalar() == 1
    engine.dispose()
