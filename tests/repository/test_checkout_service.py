"""Check-out and check-in through the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import threading

import pytest
from sqlalchemy import select, update

from repository import runtime, service
from repository.db import get_engine, transaction
from repository.errors import (
    DocumentLockedError,
    InvalidInputError,
    NotCheckedOutError,
    PermissionDeniedError,
)
from repository.models import AuditEntry, Document, DocumentVersion
from repository.types import utcnow
from tests.repository.helpers import staged

pytestmark = pytest.mark.usefixtures("repo")


def _create(account, data: bytes = b"first content") -> str:  # noqa: ANN001
    with transaction() as s:
        return service.create_document(s, actor=account.user, title="Doc", document_type="general",
                                       content=staged(data)).id


def _checkout(account, doc_id: str) -> Document:  # noqa: ANN001
    with transaction() as s:
        return service.checkout(s, actor=account.user, document_id=doc_id)


def _checkin(account, doc_id: str, data: bytes, major: bool = False) -> DocumentVersion:  # noqa: ANN001
    with transaction() as s:
        return service.checkin(s, actor=account.user, document_id=doc_id, content=staged(data), major=major)


def _lock(doc_id: str) -> tuple[str | None, dt.datetime | None]:
    with transaction() as s:
        doc = s.get(Document, doc_id)
        return doc.checked_out_by, doc.lock_expires_at


def _read(account, doc_id: str, label: str) -> bytes:  # noqa: ANN001
    with transaction() as s:
        v = service.get_version(s, actor=account.user, document_id=doc_id, version=label)
        return b"".join(service.read_version(s, version=v))


def _version_rows(doc_id: str) -> dict[str, tuple]:
    with transaction() as s:
        rows = s.execute(select(DocumentVersion).where(DocumentVersion.document_id == doc_id)).scalars()
        return {v.label: (v.id, v.sha256, v.size, v.created_at, v.blob_key, v.created_by) for v in rows}


def _expire_lock(doc_id: str) -> None:
    with transaction() as s:
        s.execute(update(Document).where(Document.id == doc_id)
                  .values(lock_expires_at=utcnow() - dt.timedelta(seconds=1)))


def test_checkout_gives_the_lock_for_eight_hours_by_default(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    before = utcnow()
    doc = _checkout(alice, doc_id)
    assert doc.checked_out_by == alice.user.id
    holder, expires = _lock(doc_id)
    assert holder == alice.user.id
    assert before + dt.timedelta(hours=8) <= expires <= utcnow() + dt.timedelta(hours=8)


def test_lock_lifetime_comes_from_settings(make_user, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("POSTROOM_LOCK_LIFETIME_HOURS", "0.5")
    get_engine().dispose()
    runtime.reset()
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    before = utcnow()
    _checkout(alice, doc_id)
    _, expires = _lock(doc_id)
    assert before + dt.timedelta(minutes=30) <= expires <= utcnow() + dt.timedelta(minutes=30)


def test_second_users_checkout_is_refused_naming_the_holder(make_user) -> None:  # noqa: ANN001
    alice, bob = make_user("alice", "author"), make_user("bob", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    with pytest.raises(DocumentLockedError) as exc:
        _checkout(bob, doc_id)
    assert "alice" in str(exc.value)
    assert exc.value.extra["checked_out_by"] == "alice"
    assert _lock(doc_id)[0] == alice.user.id


def test_holder_checking_out_again_extends_the_lock(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    _, first_expiry = _lock(doc_id)
    _checkout(alice, doc_id)
    holder, second_expiry = _lock(doc_id)
    assert holder == alice.user.id and second_expiry >= first_expiry


def test_checkin_by_someone_other_than_the_holder_is_refused(make_user) -> None:  # noqa: ANN001
    alice, bob = make_user("alice", "author"), make_user("bob", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    with pytest.raises(NotCheckedOutError, match="alice"):
        _checkin(bob, doc_id, b"bob's sneaky edit")
    assert _lock(doc_id)[0] == alice.user.id
    assert set(_version_rows(doc_id)) == {"1.0"}


def test_checkin_without_checkout_is_refused(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    with pytest.raises(NotCheckedOutError):
        _checkin(alice, doc_id, b"never checked out")
    assert set(_version_rows(doc_id)) == {"1.0"}


def test_checkin_adds_minor_version_and_major_flag_starts_next_major(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    labels = []
    for data, major in [(b"minor edit", False), (b"major release", True), (b"after release", False)]:
        _checkout(alice, doc_id)
        labels.append(_checkin(alice, doc_id, data, major=major).label)
    assert labels == ["1.1", "2.0", "2.1"]
    with transaction() as s:
        assert service.get_document(s, actor=alice.user, document_id=doc_id).version_label == "2.1"
        assert [v.label for v in service.list_versions(s, actor=alice.user, document_id=doc_id)] == [
            "1.0", "1.1", "2.0", "2.1"]


def test_checkin_releases_the_lock_so_another_user_can_check_out(make_user) -> None:  # noqa: ANN001
    alice, bob = make_user("alice", "author"), make_user("bob", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    _checkin(alice, doc_id, b"done")
    assert _lock(doc_id) == (None, None)
    _checkout(bob, doc_id)
    assert _lock(doc_id)[0] == bob.user.id


def test_holder_can_cancel_checkout_without_adding_a_version(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    with transaction() as s:
        service.cancel_checkout(s, actor=alice.user, document_id=doc_id)
    assert _lock(doc_id) == (None, None)
    assert set(_version_rows(doc_id)) == {"1.0"}
    with pytest.raises(NotCheckedOutError):
        _checkin(alice, doc_id, b"after cancel")


def test_cancel_when_not_checked_out_is_refused(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    with transaction() as s, pytest.raises(NotCheckedOutError):
        service.cancel_checkout(s, actor=alice.user, document_id=doc_id)


def test_non_admin_cannot_break_another_users_lock(make_user) -> None:  # noqa: ANN001
    alice, bob = make_user("alice", "author"), make_user("bob", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    with transaction() as s, pytest.raises(PermissionDeniedError):
        service.cancel_checkout(s, actor=bob.user, document_id=doc_id, reason="I need it")
    assert _lock(doc_id)[0] == alice.user.id


def test_admin_breaking_a_lock_must_give_a_reason(make_user) -> None:  # noqa: ANN001
    alice, root = make_user("alice", "author"), make_user("root", "admin")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    for reason in (None, "", "   "):
        with transaction() as s, pytest.raises(InvalidInputError):
            service.cancel_checkout(s, actor=root.user, document_id=doc_id, reason=reason)
    assert _lock(doc_id)[0] == alice.user.id


def test_admin_breaks_lock_with_reason_and_the_audit_trail_records_it(make_user) -> None:  # noqa: ANN001
    alice, root = make_user("alice", "author"), make_user("root", "admin")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    with transaction() as s:
        service.cancel_checkout(s, actor=root.user, document_id=doc_id, reason="alice is on leave")
    assert _lock(doc_id) == (None, None)
    with transaction() as s:
        entry = s.execute(select(AuditEntry).where(AuditEntry.object_id == doc_id,
                                                   AuditEntry.action == "document.checkout_broken")).scalar_one()
    assert entry.actor == "root"
    assert entry.details == {"holder": "alice", "reason": "alice is on leave"}
    with pytest.raises(NotCheckedOutError):
        _checkin(alice, doc_id, b"too late")


def test_expired_lock_can_be_taken_by_another_user(make_user) -> None:  # noqa: ANN001
    alice, bob = make_user("alice", "author"), make_user("bob", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    _expire_lock(doc_id)
    _checkout(bob, doc_id)
    assert _lock(doc_id)[0] == bob.user.id
    assert _checkin(bob, doc_id, b"bob's version").label == "1.1"


def test_holder_cannot_check_in_after_the_lock_expired(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    _expire_lock(doc_id)
    with pytest.raises(NotCheckedOutError, match="expired"):
        _checkin(alice, doc_id, b"stale edit")
    assert set(_version_rows(doc_id)) == {"1.0"}


def test_every_version_reads_back_byte_for_byte(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    contents = {"1.0": b"original text"}
    doc_id = _create(alice, contents["1.0"])
    for data, major in [(b"", False), (os.urandom(300 * 1024), True), (b"original text", False),
                        ("gr\u00fc\u00dfe \u2603\n".encode() * 1000, False)]:
        _checkout(alice, doc_id)
        contents[_checkin(alice, doc_id, data, major=major).label] = data
    assert list(contents) == ["1.0", "1.1", "2.0", "2.1", "2.2"]
    for label, data in contents.items():
        assert _read(alice, doc_id, label) == data, label


def test_later_checkins_never_modify_earlier_version_rows(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice, b"one")
    _checkout(alice, doc_id)
    _checkin(alice, doc_id, b"two")
    before = _version_rows(doc_id)
    for i, major in enumerate([False, True, False]):
        _checkout(alice, doc_id)
        _checkin(alice, doc_id, f"later {i}".encode(), major=major)
    after = _version_rows(doc_id)
    assert {label: after[label] for label in before} == before
    assert _read(alice, doc_id, "1.0") == b"one" and _read(alice, doc_id, "1.1") == b"two"


def test_concurrent_checkouts_exactly_one_wins(make_user) -> None:  # noqa: ANN001
    threads_n = 8
    owner = make_user("owner", "author")
    doc_id = _create(owner)
    accounts = [make_user(f"user{i}", "author") for i in range(threads_n)]
    barrier = threading.Barrier(threads_n)
    results: dict[str, object] = {}

    def attempt(account) -> None:  # noqa: ANN001
        try:
            barrier.wait(timeout=30)
            with transaction() as s:
                service.checkout(s, actor=account.user, document_id=doc_id)
            results[account.user.username] = "won"
        except Exception as exc:  # record every outcome, including unexpected ones, for the assertion
            results[account.user.username] = exc

    threads = [threading.Thread(target=attempt, args=(a,)) for a in accounts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == threads_n
    winners = [name for name, r in results.items() if r == "won"]
    losers = {name: r for name, r in results.items() if r != "won"}
    assert len(winners) == 1, results
    assert all(isinstance(r, DocumentLockedError) for r in losers.values()), losers
    assert all(winners[0] in str(r) for r in losers.values()), losers
    winner_id = next(a.user.id for a in accounts if a.user.username == winners[0])
    assert _lock(doc_id)[0] == winner_id
    with transaction() as s:
        checkouts = s.execute(select(AuditEntry.actor).where(AuditEntry.object_id == doc_id,
                                                             AuditEntry.action == "document.checked_out")).all()
    assert [a for (a,) in checkouts] == winners


def test_double_submitted_checkin_adds_exactly_one_version(make_user) -> None:  # noqa: ANN001
    threads_n = 4
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    barrier = threading.Barrier(threads_n)
    results: list[object] = []

    def attempt(i: int) -> None:
        try:
            content = staged(f"submission {i}".encode())
            barrier.wait(timeout=30)
            with transaction() as s:
                results.append(service.checkin(s, actor=alice.user, document_id=doc_id, content=content).label)
        except Exception as exc:  # record every outcome, including unexpected ones, for the assertion
            results.append(exc)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == threads_n
    assert [r for r in results if isinstance(r, str)] == ["1.1"], results
    assert all(isinstance(r, NotCheckedOutError) for r in results if not isinstance(r, str)), results
    assert set(_version_rows(doc_id)) == {"1.0", "1.1"}
    assert _lock(doc_id) == (None, None)


def test_checkin_upload_is_refused_before_any_content_when_caller_holds_no_lock(make_user) -> None:  # noqa: ANN001
    alice, bob = make_user("alice", "author"), make_user("bob", "author")
    doc_id = _create(alice)
    with transaction() as s, pytest.raises(NotCheckedOutError):
        service.prepare_upload(s, actor=alice.user, document_id=doc_id)
    _checkout(alice, doc_id)
    with transaction() as s, pytest.raises(NotCheckedOutError, match="alice"):
        service.prepare_upload(s, actor=bob.user, document_id=doc_id)
    with transaction() as s:
        sealer = service.prepare_upload(s, actor=alice.user, document_id=doc_id)
    sealer.abort()
