"""A subprocess for tests/repository/test_crash_safety.py: checks versions in until it is killed.

Run as `python -m tests.repository.crash_worker MODE DOCUMENT_ID USER_ID JOURNAL SEED` with the test's
POSTROOM_* environment. It prints one line, `ready` (loop) or `holding` (hold modes), only so the test knows
when to start its kill timer; the test judges the outcome from the database alone, and uses the journal only
for an extra durability check (everything the worker saw committed must be in the database).

Modes:
- `loop`: forever check out, then check in random content (a few bytes up to ~1.2 MiB), alternating major and
  minor, each step in its own transaction.
- `hold-before-commit`: in one transaction check out, check in, and write many audit rows (so SQLite spills
  uncommitted pages into the WAL), then wait to be killed before the commit.
- `hold-in-put`: check out and check in, but stall inside the blob write (a partial temp file exists and the
  write transaction is open), then wait to be killed.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
from collections.abc import Iterable, Iterator

from repository import audit, service, vault
from repository.config import get_settings
from repository.content import stage_stream
from repository.db import get_engine, transaction
from repository.models import User


def _journal(fd: int, *fields: str) -> None:
    os.write(fd, (" ".join(fields) + "\n").encode())


def _content(rng: random.Random, counter: int) -> bytes:
    # Log-uniform sizes so there are many small versions and some large ones whose blob writes take a while.
    size = int(10 ** rng.uniform(1, 6.1))
    return f"crash-test version {counter} pid {os.getpid()}\n".encode() + os.urandom(size)


def _staged(data: bytes, counter: int):  # noqa: ANN202
    settings = get_settings()
    return stage_stream(iter([data[i : i + 256 * 1024] for i in range(0, len(data), 256 * 1024)]),
                        max_bytes=settings.max_upload_bytes, tmp_dir=settings.tmp_dir, filename=f"v{counter}.bin")


def _signal(word: str) -> None:
    sys.stdout.write(word + "\n")
    sys.stdout.flush()


def _wait_forever() -> None:
    while True:
        time.sleep(60)


def loop(document_id: str, user_id: str, journal: int, seed: int) -> None:
    """Check in versions until killed; journal `attempt SHA` before and `committed SHA LABEL` after each."""
    rng = random.Random(seed)
    counter = 0
    _signal("ready")
    while True:
        counter += 1
        data = _content(rng, counter)
        sha = hashlib.sha256(data).hexdigest()
        major = counter % 2 == 0
        _journal(journal, "attempt", sha)
        # After a kill the lock is still ours; checking out again just extends it.
        with transaction() as session:
            actor = session.get(User, user_id)
            service.checkout(session, actor=actor, document_id=document_id)
        staged = _staged(data, counter)
        try:
            with transaction() as session:
                actor = session.get(User, user_id)
                version = service.checkin(session, document_id=document_id, actor=actor, content=staged,
                                          major=major, comment=f"crash test {counter}")
                label = version.label
        finally:
            staged.release()
        _journal(journal, "committed", sha, label)


def hold_before_commit(document_id: str, user_id: str, journal: int, seed: int) -> None:
    """Do a whole check-out/check-in plus bulky audit rows in one transaction and never commit it."""
    data = _content(random.Random(seed), 1)
    sha = hashlib.sha256(data).hexdigest()
    _journal(journal, "attempt", sha)
    staged = _staged(data, 1)
    with transaction() as session:
        actor = session.get(User, user_id)
        service.checkout(session, actor=actor, document_id=document_id)
        service.checkin(session, document_id=document_id, actor=actor, content=staged, major=True)
        for i in range(800):
            audit.record(session, actor=actor.username, action="crash.filler", object_type="document",
                         object_id=document_id, details={"i": i, "pad": "x" * 8000})
        session.flush()
        _signal("holding")
        _wait_forever()


def hold_in_put(document_id: str, user_id: str, journal: int, seed: int) -> None:
    """Check in, but stall in the middle of writing the encrypted blob."""
    real = vault.encrypt_stream

    def stalling(key: bytes, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for n, piece in enumerate(real(key, chunks)):
            yield piece
            if n == 2:
                _signal("holding")
                _wait_forever()

    vault.encrypt_stream = stalling
    data = _content(random.Random(seed), 1) + os.urandom(1024 * 1024)
    sha = hashlib.sha256(data).hexdigest()
    _journal(journal, "attempt", sha)
    staged = _staged(data, 1)
    with transaction() as session:
        actor = session.get(User, user_id)
        service.checkout(session, actor=actor, document_id=document_id)
        service.checkin(session, document_id=document_id, actor=actor, content=staged, major=False)
    raise AssertionError("the stalled check-in returned")


MODES = {"loop": loop, "hold-before-commit": hold_before_commit, "hold-in-put": hold_in_put}


def main(argv: list[str]) -> None:
    """Parse the arguments and run the mode until killed."""
    mode, document_id, user_id, journal_path, seed = argv
    get_engine()  # connect before signalling readiness, so the kill timer measures real work
    journal = os.open(journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    MODES[mode](document_id, user_id, journal, int(seed))


if __name__ == "__main__":
    main(sys.argv[1:])
