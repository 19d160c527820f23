"""The hash-chained audit trail: what is recorded, and that tampering is detected (service and CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path

import pytest
from sqlalchemy import bindparam, select, text

from repository import audit, identity, service
from repository.db import transaction
from repository.models import AuditEntry, AuditHead
from repository.types import JSONType
from tests.conftest import PASSWORD
from tests.repository.helpers import staged

pytestmark = pytest.mark.usefixtures("repo")
ROOT = Path(__file__).resolve().parents[2]


def _some_history(account) -> str:  # noqa: ANN001
    """Create a document and work on it, leaving a handful of audit rows; returns the document id."""
    user = account.user
    with transaction() as s:
        doc_id = service.create_document(s, actor=user, title="Doc", document_type="general",
                                         content=staged(b"v1")).id
    with transaction() as s:
        service.checkout(s, actor=user, document_id=doc_id)
    with transaction() as s:
        service.checkin(s, actor=user, document_id=doc_id, content=staged(b"v2"))
    with transaction() as s:
        service.update_document(s, actor=user, document_id=doc_id, expected_revision=None, title="Renamed")
    return doc_id


def _rows() -> list[AuditEntry]:
    with transaction() as s:
        return list(s.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars())


def _verify() -> audit.ChainReport:
    with transaction() as s:
        return audit.verify(s)


def _sql(statement: str, **params: object) -> None:
    with transaction() as s:
        s.execute(text(statement), params)


def _set_details(seq: int, details: dict) -> None:
    stmt = text("UPDATE audit_log SET details = :d WHERE seq = :s").bindparams(bindparam("d", type_=JSONType))
    with transaction() as s:
        s.execute(stmt, {"d": details, "s": seq})


def _cli_verify() -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    for name in ("POSTROOM_DATA_DIR", "POSTROOM_KEYRING_PATH", "POSTROOM_DATABASE_URL"):
        if name in os.environ:
            env[name] = os.environ[name]
    env["COLUMNS"] = "400"
    return subprocess.run([sys.executable, "-m", "api.cli", "audit", "verify"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_document_actions_are_recorded_with_actor_and_object(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    user = alice.user
    with transaction() as s:
        doc_id = service.create_document(s, actor=user, title="Doc", document_type="general",
                                         content=staged(b"v1")).id
    with transaction() as s:
        service.checkout(s, actor=user, document_id=doc_id)
    with transaction() as s:
        service.checkin(s, actor=user, document_id=doc_id, content=staged(b"v2"))
    with transaction() as s:
        service.checkout(s, actor=user, document_id=doc_id)
    with transaction() as s:
        service.cancel_checkout(s, actor=user, document_id=doc_id)
    with transaction() as s:
        service.update_document(s, actor=user, document_id=doc_id, expected_revision=None, title="Renamed")
    with transaction() as s:
        service.trash_document(s, actor=user, document_id=doc_id)
    with transaction() as s:
        service.restore_document(s, actor=user, document_id=doc_id)
    trail = [(e.actor, e.action, e.object_type) for e in _rows() if e.object_id == doc_id]
    assert trail == [("alice", action, "document") for action in (
        "document.created", "document.checked_out", "document.checked_in", "document.checked_out",
        "document.checkout_cancelled", "document.updated", "document.trashed", "document.restored")]
    checkin = next(e for e in _rows() if e.action == "document.checked_in")
    assert checkin.details["version"] == "1.1" and checkin.details["size"] == 2


def test_verify_passes_on_an_untouched_chain(make_user) -> None:  # noqa: ANN001
    _some_history(make_user("alice", "author"))
    rows = _rows()
    assert len(rows) >= 5
    report = _verify()
    assert report.ok and report.checked == len(rows)


def test_altered_details_are_reported_at_that_row(make_user) -> None:  # noqa: ANN001
    _some_history(make_user("alice", "author"))
    target = next(e for e in _rows() if e.action == "document.checked_in")
    _set_details(target.seq, {**target.details, "sha256": "0" * 64})
    report = _verify()
    assert not report.ok
    assert report.bad_seq == target.seq
    assert report.checked == target.seq - 1


def test_deleted_middle_row_is_reported(make_user) -> None:  # noqa: ANN001
    _some_history(make_user("alice", "author"))
    middle = _rows()[len(_rows()) // 2].seq
    _sql("DELETE FROM audit_log WHERE seq = :s", s=middle)
    report = _verify()
    assert not report.ok and report.bad_seq == middle
    assert "missing" in report.reason


def test_swapped_rows_are_reported(make_user) -> None:  # noqa: ANN001
    _some_history(make_user("alice", "author"))
    rows = _rows()
    a, b = rows[2], rows[3]
    columns = ("at", "actor", "action", "object_type", "object_id", "details", "prev_hash", "hash")
    stmt = text(f"UPDATE audit_log SET {', '.join(f'{c} = :{c}' for c in columns)} WHERE seq = :seq").bindparams(
        bindparam("details", type_=JSONType), bindparam("at", type_=AuditEntry.__table__.c.at.type))
    with transaction() as s:
        for target, source in ((a, b), (b, a)):
            s.execute(stmt, {**{c: getattr(source, c) for c in columns}, "seq": target.seq})
    assert [(e.seq, e.action) for e in _rows()][2:4] == [(a.seq, b.action), (b.seq, a.action)]
    report = _verify()
    assert not report.ok and report.bad_seq == a.seq


def test_deleted_last_row_is_reported_because_the_head_remembers_the_tail(make_user) -> None:  # noqa: ANN001
    _some_history(make_user("alice", "author"))
    last = _rows()[-1].seq
    with transaction() as s:
        assert s.get(AuditHead, 1).last_seq == last
    _sql("DELETE FROM audit_log WHERE seq = :s", s=last)
    report = _verify()
    assert not report.ok and report.bad_seq == last


def test_cli_verify_exits_zero_on_good_chain_and_names_the_bad_row_after_tampering(make_user) -> None:  # noqa: ANN001
    _some_history(make_user("alice", "author"))
    good = _cli_verify()
    assert good.returncode == 0, good.stdout + good.stderr
    assert "verified" in good.stdout + good.stderr
    target = _rows()[3]
    _set_details(target.seq, {"forged": True})
    bad = _cli_verify()
    assert bad.returncode != 0
    assert f"row {target.seq}" in bad.stdout + bad.stderr


def test_successful_login_is_audited(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    with transaction() as s:
        assert identity.authenticate(s, username="alice", password=PASSWORD).id == alice.user.id
    entry = _rows()[-1]
    assert (entry.actor, entry.action, entry.object_id) == ("alice", "auth.login", alice.user.id)


def test_failed_logins_are_audited_for_known_and_unknown_users(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    with transaction() as s:
        assert identity.authenticate(s, username="alice", password="wrong-password-1") is None
    with transaction() as s:
        assert identity.authenticate(s, username="mallory", password="wrong-password-2") is None
    failed = [(e.actor, e.object_id) for e in _rows() if e.action == "auth.login_failed"]
    assert failed == [("alice", alice.user.id), ("mallory", None)]


def test_passwords_never_appear_in_the_audit_trail(make_user) -> None:  # noqa: ANN001
    make_user("alice", "author")
    secrets_tried = [PASSWORD, "Tr0ub4dor&3-wrong", "another-wrong-password"]
    with transaction() as s:
        identity.authenticate(s, username="alice", password=PASSWORD)
    for attempt in secrets_tried[1:]:
        with transaction() as s:
            identity.authenticate(s, username="alice", password=attempt)
        with transaction() as s:
            identity.authenticate(s, username="nobody", password=attempt)
    with transaction() as s:
        raw = [" ".join(str(c) for c in row) for row in s.execute(text("SELECT * FROM audit_log")).all()]
    assert len(raw) >= 6
    for password in secrets_tried:
        assert not any(password in row for row in raw), password


def test_concurrent_writers_keep_the_chain_intact(make_user) -> None:  # noqa: ANN001
    threads_n = 8
    accounts = [make_user(f"user{i}", "author") for i in range(threads_n)]
    barrier = threading.Barrier(threads_n)
    errors: list[str] = []

    def work(account) -> None:  # noqa: ANN001
        try:
            content = staged(f"by {account.user.username}".encode())
            barrier.wait(timeout=30)
            with transaction() as s:
                service.create_document(s, actor=account.user, title="Doc", document_type="general", content=content)
        except Exception:  # collected for the assertion
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=work, args=(a,)) for a in accounts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [], "\n".join(map(str, errors))
    rows = _rows()
    assert [e.seq for e in rows] == list(range(1, len(rows) + 1))
    assert sorted(e.actor for e in rows if e.action == "document.created") == sorted(
        a.user.username for a in accounts)
    assert _verify().ok
