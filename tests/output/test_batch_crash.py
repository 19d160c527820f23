"""Reliability: `postroom worker` killed with SIGKILL in the middle of a batch, several times. The batch completes,
every row has exactly one archived letter and one ledger row, and each letter's email reaches the (real, aiosmtpd)
SMTP server once. The worker is a real subprocess with its own LibreOffice, on the embedded default."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
from sqlalchemy import func, select

from output.models import HANDOVER, DeliveryEvent, Dispatch, Letter, LetterBatch, LetterBatchRow
from output.service import batches, create_letter, dispatch_due
from repository import audit
from repository.db import transaction
from repository.types import utcnow
from tests.output.letters_support import approved_template, customer, free_port_pair, smtp, uno_pool  # noqa: F401

pytestmark = [pytest.mark.usefixtures("repo"), pytest.mark.libreoffice, pytest.mark.smtp]

ROOT = Path(__file__).resolve().parents[2]
ROWS = 60
KILLS = 3


def _worker(port_base: int) -> subprocess.Popen:
    env = {**os.environ, "POSTROOM_UNO_WORKERS": "1", "POSTROOM_UNO_PORT_BASE": str(port_base),
           "POSTROOM_BATCH_CHUNK_LETTERS": "2", "POSTROOM_BATCH_LEASE_SECONDS": "2",
           "POSTROOM_BATCH_POLL_SECONDS": "0.2", "POSTROOM_DISPATCH_POLL_SECONDS": "0.2",
           "POSTROOM_DISPATCH_LEASE_SECONDS": "2", "POSTROOM_OUTBOX_POLL_SECONDS": "0.5"}
    return subprocess.Popen([sys.executable, "-m", "api.cli", "worker"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_orphans(port_bases: list[int]) -> None:
    """LibreOffice processes of killed workers (they run in their own sessions, so SIGKILL leaves them)."""
    marks = {str(p) for base in port_bases for p in (base, base + 1)}
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if ("soffice" in cmdline or "unoserver" in cmdline) and any(m in cmdline for m in marks):
            proc.kill()


def _done() -> int:
    with transaction(readonly=True) as s:
        return s.execute(select(func.count()).select_from(LetterBatchRow).where(
            LetterBatchRow.state != "pending")).scalar_one()


def _wait(predicate, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_batch_survives_its_worker_being_killed_mid_batch(make_user, smtp) -> None:  # noqa: ANN001, F811
    author, approver = make_user("alice", "author"), make_user("bob", "approver")
    approved_template(author, approver)
    for i in range(ROWS):
        customer(author, f"K-{i}", email=f"k{i}@example.com")
    with transaction() as s:
        batch_id = batches.create_batch(s, actor=author.user, template="statement", channel="email",
                                        rows=[(i + 1, {"customer_ref": f"K-{i}", "data": {"balance": i}})
                                              for i in range(ROWS)]).id
    random.seed()
    bases: list[int] = []
    try:
        for kill in range(KILLS):
            before = _done()
            bases.append(free_port_pair())
            worker = _worker(bases[-1])
            try:
                _wait(lambda b=before: _done() > b, 120, f"progress before kill {kill + 1}")
                time.sleep(random.uniform(0, 0.5))  # somewhere in the next chunks: rendering, converting, archiving
            finally:
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=10)
            assert _done() < ROWS, "the batch finished before the worker could be killed: use more rows"
        bases.append(free_port_pair())
        worker = _worker(bases[-1])
        try:
            def finished() -> bool:
                with transaction(readonly=True) as s:
                    status = s.get(LetterBatch, batch_id).status
                    unsent = s.execute(select(func.count()).select_from(Dispatch).where(
                        Dispatch.state != "sent")).scalar_one()
                return status == "completed" and unsent == 0 and len(smtp.messages) >= ROWS

            _wait(finished, 180, "the batch to complete and every email to be sent")
            time.sleep(1.0)  # anything still on its way to the SMTP server arrives now
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
    finally:
        _kill_orphans(bases)

    with transaction(readonly=True) as s:
        batch = s.get(LetterBatch, batch_id)
        assert (batch.status, batch.rows_done, batch.rows_failed) == ("completed", ROWS, 0)
        assert batch.runs >= KILLS + 1  # taken over after every kill
        letters = list(s.execute(select(Letter).where(Letter.batch_id == batch_id)).scalars())
        assert sorted(lt.batch_row for lt in letters) == list(range(1, ROWS + 1))  # one letter per row
        rows = {r.row_no: r.letter_id for r in s.execute(select(LetterBatchRow)).scalars()}
        assert rows == {lt.batch_row: lt.id for lt in letters}
        ledger = Counter(s.execute(select(Dispatch.letter_id).where(Dispatch.channel == "email")).scalars())
        assert ledger == dict.fromkeys((lt.id for lt in letters), 1)  # one email row per letter
        assert s.execute(select(func.count()).select_from(Dispatch)).scalar_one() == ROWS
        assert audit.verify(s).ok
    received = [email.message_from_bytes(raw, policy=email.policy.default) for _f, _t, raw in smtp.messages]
    ids = Counter(str(m["Message-ID"]) for m in received)
    assert len(ids) == ROWS and set(ids.values()) == {1}, f"duplicate emails reached the SMTP server: {ids}"
    assert sorted(rcpt for _f, tos, _r in smtp.messages for rcpt in tos) == sorted(
        f"k{i}@example.com" for i in range(ROWS))


def _email_letter(make_user) -> str:  # noqa: ANN001
    """A letter queued on the email channel; its id."""
    author, approver = make_user("alice", "author"), make_user("bob", "approver")
    approved_template(author, approver)
    customer_id = customer(author, "H-1", email="h1@example.com")
    with transaction() as s:
        return create_letter(s, actor=author.user, template="statement", customer_id=customer_id,
                             data={"balance": 1}, channel="email").id


def test_a_message_handed_over_as_its_dispatcher_died_is_not_sent_again(make_user, smtp,  # noqa: ANN001, F811
                                                                         uno_pool) -> None:  # noqa: ANN001, F811
    letter_id = _email_letter(make_user)
    # What a dispatcher killed after its commit point and before the relay's answer leaves behind:
    with transaction() as s:
        row = s.execute(select(Dispatch).where(Dispatch.letter_id == letter_id)).scalar_one()
        row.state, row.attempts, row.provider_ref = "sending", 1, f"{HANDOVER}<pr.x.{'0' * 32}@localhost>"
        row.lease_until = utcnow() - dt.timedelta(seconds=1)
    assert dispatch_due(limit=5) == 0  # nothing to send
    with transaction(readonly=True) as s:
        row = s.execute(select(Dispatch).where(Dispatch.letter_id == letter_id)).scalar_one()
        assert (row.state, row.provider_ref) == ("sent", f"<pr.x.{'0' * 32}@localhost>")
        kinds = [e.kind for e in s.execute(select(DeliveryEvent).where(DeliveryEvent.letter_id == letter_id))
                 .scalars()]
        assert kinds == ["queued", "sent"]
    assert smtp.messages == []


def test_only_one_dispatcher_passes_the_commit_point_and_the_other_records_nothing(make_user, smtp,  # noqa: ANN001, F811
                                                                                  uno_pool) -> None:  # noqa: ANN001, F811
    from output.channels.base import TAKEN_OVER, SendResult
    from output.service.dispatch import SEND, _commit_point, _record
    from repository.config import get_settings
    from repository.db import get_engine

    letter_id = _email_letter(make_user)
    with transaction() as s:  # dispatcher A claimed it; its lease ran out and B claimed it too
        row = s.execute(select(Dispatch).where(Dispatch.letter_id == letter_id)).scalar_one()
        row.state, row.attempts, row.lease_until = "sending", 2, utcnow() + dt.timedelta(minutes=5)
        row_id = row.id
    a, b = _commit_point(get_engine(), row_id), _commit_point(get_engine(), row_id)
    assert a("<pr.a@localhost>") is True
    assert b("<pr.a@localhost>") is False  # B stops before the final dot: the relay gets one message
    _record(get_engine(), get_settings(), row_id, SEND,
            SendResult(status=TAKEN_OVER, provider_ref="<pr.a@localhost>", detail="taken over", retryable=False))
    with transaction(readonly=True) as s:
        row = s.get(Dispatch, row_id)
        assert (row.state, row.provider_ref) == ("sending", f"{HANDOVER}<pr.a@localhost>")  # A records the outcome
        assert s.execute(select(func.count()).select_from(Dispatch)).scalar_one() == 1  # no fallback queued
