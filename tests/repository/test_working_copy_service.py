"""Private working copies of checked-out documents, through the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select, update

from repository import runtime, service, validators, vault
from repository.db import transaction
from repository.errors import (
    InvalidInputError,
    NotCheckedOutError,
    NotFoundError,
    PermissionDeniedError,
    UnsafeContentError,
    UnsupportedMediaTypeError,
)
from repository.models import AuditEntry, DavLock, Document, DocumentType, DocumentVersion
from repository.types import utcnow
from tests.repository.helpers import staged

pytestmark = pytest.mark.usefixtures("repo")


@pytest.fixture
def admin_user(make_user):  # noqa: ANN001, ANN201
    """An admin."""
    return make_user("root", "admin")


def _create(account, data: bytes = b"version one", document_type: str = "general") -> str:  # noqa: ANN001
    with transaction() as s:
        return service.create_document(s, actor=account.user, title="Doc", document_type=document_type,
                                       content=staged(data)).id


def _checkout(account, doc_id: str) -> None:  # noqa: ANN001
    with transaction() as s:
        service.checkout(s, actor=account.user, document_id=doc_id)


def _save(account, doc_id: str, data: bytes, filename: str = "draft.txt") -> service.WorkingCopy:  # noqa: ANN001
    with transaction() as s:
        return service.save_working_copy(s, actor=account.user, document_id=doc_id, content=staged(data, filename))


def _read_working(account, doc_id: str) -> bytes:  # noqa: ANN001
    with transaction(readonly=True) as s:
        _w, stream = service.read_working_copy(s, actor=account.user, document_id=doc_id)
    return b"".join(stream)  # the stream outlives its transaction


def _current(account, doc_id: str) -> tuple[str, bytes]:  # noqa: ANN001
    with transaction() as s:
        v = service.get_version(s, actor=account.user, document_id=doc_id)
        return v.label, b"".join(service.read_version(s, version=v))


def _row(doc_id: str) -> Document:
    with transaction(readonly=True) as s:
        return s.get(Document, doc_id)


def test_holder_saves_a_working_copy_that_only_they_read(make_user) -> None:  # noqa: ANN001
    alice, bob = make_user("alice", "author"), make_user("bob", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    saved = _save(alice, doc_id, b"work in progress", "letter.txt")
    assert (saved.size, saved.filename, saved.media_type) == (16, "letter.txt", "text/plain")
    assert _read_working(alice, doc_id) == b"work in progress"
    assert _current(alice, doc_id) == ("1.0", b"version one")  # nothing is a version until check-in
    with pytest.raises(NotFoundError):
        _read_working(bob, doc_id)


def test_saving_again_replaces_the_working_copy(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    _save(alice, doc_id, b"first draft")
    _save(alice, doc_id, b"second draft")
    assert _read_working(alice, doc_id) == b"second draft"


def test_working_copy_is_refused_to_anyone_but_the_holder(make_user) -> None:  # noqa: ANN001
    alice, bob = make_user("alice", "author"), make_user("bob", "author")
    doc_id = _create(alice)
    with pytest.raises(NotCheckedOutError, match="check it out first"):
        _save(alice, doc_id, b"no lock yet")
    _checkout(alice, doc_id)
    with pytest.raises(NotCheckedOutError, match="alice"):
        _save(bob, doc_id, b"not mine to save")
    assert _row(doc_id).working_blob_key is None


def test_working_copy_permissions_in_pairs(make_user) -> None:  # noqa: ANN001
    alice, helpdesk, outsider = make_user("alice", "author"), make_user("hd", "helpdesk"), make_user("x", "auditor")
    with transaction() as s:
        s.execute(update(DocumentType).where(DocumentType.name == "general").values(read_roles=["author", "helpdesk"]))
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    with pytest.raises(NotFoundError):
        _save(outsider, doc_id, b"cannot even see it")
    with pytest.raises(PermissionDeniedError):
        _save(helpdesk, doc_id, b"may read, may not write")
    assert _save(alice, doc_id, b"the author may").size == 14


def test_working_copy_is_checked_like_a_checkin(make_user, admin_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    with transaction() as s:
        service.create_type(s, actor=admin_user.user, name="pdf-only", allowed_media_types=["application/pdf"],
                            read_roles=["author"], write_roles=["author"])
    doc_id = _create(alice, b"%PDF-1.4 first", document_type="pdf-only")
    _checkout(alice, doc_id)
    with pytest.raises(UnsupportedMediaTypeError):
        _save(alice, doc_id, b"plain text is not a pdf")
    with pytest.raises(UnsafeContentError):
        _save(alice, doc_id, b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>')
    assert _row(doc_id).working_blob_key is None


def test_working_copy_is_encrypted_at_rest(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    secret = b"the merger is off, tell nobody " * 20
    saved = _save(alice, doc_id, secret)
    raw = b"".join(runtime.get_runtime().store.open(saved.blob_key))
    assert secret[:30] not in raw and len(raw) > len(secret)


def test_checkin_without_content_makes_the_working_copy_the_next_version(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    saved = _save(alice, doc_id, b"finished text", "final.txt")
    with transaction() as s:
        version = service.checkin(s, actor=alice.user, document_id=doc_id, comment="done")
        assert (version.label, version.filename, version.comment) == ("1.1", "final.txt", "done")
    assert _current(alice, doc_id) == ("1.1", b"finished text")
    row = _row(doc_id)
    assert row.checked_out_by is None and row.working_blob_key is None and row.working_sha256 is None
    with transaction(readonly=True) as s:
        stored = s.execute(select(DocumentVersion).where(DocumentVersion.document_id == doc_id,
                                                         DocumentVersion.minor == 1)).scalar_one()
        assert stored.blob_key == saved.blob_key  # the version points at the working blob: nothing copied
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "document.checked_in")).scalar_one()
        assert entry.details["from_working_copy"] is True


def test_checkin_of_working_copy_as_major_version(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    _save(alice, doc_id, b"a big rewrite")
    with transaction() as s:
        assert service.checkin(s, actor=alice.user, document_id=doc_id, major=True).label == "2.0"


def test_checkin_without_content_and_without_working_copy_is_refused(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    with pytest.raises(InvalidInputError, match="no working copy"), transaction() as s:
        service.checkin(s, actor=alice.user, document_id=doc_id)
    assert _row(doc_id).checked_out_by == alice.user.id


def test_checkin_with_content_discards_the_working_copy(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    _save(alice, doc_id, b"abandoned draft")
    with transaction() as s:
        service.checkin(s, actor=alice.user, document_id=doc_id, content=staged(b"uploaded instead"))
    assert _current(alice, doc_id) == ("1.1", b"uploaded instead")
    assert _row(doc_id).working_blob_key is None


def test_validators_run_on_checkin_from_the_working_copy(make_user) -> None:  # noqa: ANN001
    seen: list[bytes] = []

    def refuse_forbidden(_session, candidate: validators.Candidate) -> None:  # noqa: ANN001
        with candidate.open() as f:
            f.seek(2)
            data = f.read()
        seen.append(data)
        if b"forbidden" in data:
            raise UnsafeContentError("the text says forbidden")

    alice = make_user("alice", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    validators.register("general", "test-forbidden", refuse_forbidden)
    try:
        _save(alice, doc_id, b"a forbidden word")
        with pytest.raises(UnsafeContentError), transaction() as s:
            service.checkin(s, actor=alice.user, document_id=doc_id)
        assert seen[0] == b"forbidden word"  # the validator read the decrypted working copy, seeking in it
        row = _row(doc_id)
        assert row.checked_out_by == alice.user.id and row.working_blob_key is not None  # nothing was lost
        assert _current(alice, doc_id)[0] == "1.0"
        _save(alice, doc_id, b"an acceptable word")
        with transaction() as s:
            assert service.checkin(s, actor=alice.user, document_id=doc_id).label == "1.1"
    finally:
        validators.unregister("general", "test-forbidden")


def test_cancelling_the_checkout_discards_the_working_copy(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    _save(alice, doc_id, b"never mind")
    with transaction() as s:
        service.cancel_checkout(s, actor=alice.user, document_id=doc_id)
    assert _row(doc_id).working_blob_key is None
    _checkout(alice, doc_id)
    with pytest.raises(NotFoundError):
        _read_working(alice, doc_id)
    assert _current(alice, doc_id) == ("1.0", b"version one")


def test_breaking_the_checkout_discards_the_working_copy(make_user, admin_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    _save(alice, doc_id, b"alice's draft")
    with transaction() as s:
        service.cancel_checkout(s, actor=admin_user.user, document_id=doc_id, reason="alice is on leave")
    assert _row(doc_id).working_blob_key is None
    with transaction(readonly=True) as s:
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "document.checkout_broken")).scalar_one()
        assert entry.details["discarded_working_copy"]


def test_working_copy_survives_only_a_checkout_by_the_same_user(make_user) -> None:  # noqa: ANN001
    alice, bob = make_user("alice", "author"), make_user("bob", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    _save(alice, doc_id, b"alice's draft")
    _checkout(alice, doc_id)  # extending keeps it
    assert _read_working(alice, doc_id) == b"alice's draft"
    with transaction() as s:
        s.execute(update(Document).where(Document.id == doc_id)
                  .values(lock_expires_at=utcnow() - dt.timedelta(seconds=1)))
    _checkout(bob, doc_id)  # alice's check-out expired: bob takes over, alice's draft is not his
    assert _row(doc_id).working_blob_key is None
    with pytest.raises(NotFoundError):
        _read_working(bob, doc_id)


def test_saving_and_checking_in_are_audited(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    _save(alice, doc_id, b"audited draft")
    with transaction(readonly=True) as s:
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "document.working_copy_saved")).scalar_one()
        assert (entry.actor, entry.object_id, entry.details["size"]) == ("alice", doc_id, 13)


def _dav_lock(account, doc_id: str) -> str:  # noqa: ANN001
    """A WebDAV lock row of the account on the document (as api/dav/_locks.py writes it); its token."""
    token = f"opaquelocktoken:{uuid.uuid4()}"
    with transaction() as s:
        s.add(DavLock(token=token, root=f"/documents/{doc_id}/content", principal=account.user.username,
                      user_id=account.user.id, scope="exclusive", depth="0", owner=b"", timeout=3600,
                      expires_at=utcnow() + dt.timedelta(hours=1), document_id=doc_id))
    return token


def _dav_locks(doc_id: str) -> list[str]:
    with transaction(readonly=True) as s:
        return list(s.execute(select(DavLock.token).where(DavLock.document_id == doc_id)).scalars())


def test_another_users_checkout_over_an_expired_lock_audits_the_discard(make_user) -> None:  # noqa: ANN001
    alice, bob = make_user("alice", "author"), make_user("bob", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    saved = _save(alice, doc_id, b"alice's draft")
    _dav_lock(alice, doc_id)
    _checkout(alice, doc_id)  # extending her own check-out keeps her draft and her locks
    assert len(_dav_locks(doc_id)) == 1
    with transaction() as s:
        s.execute(update(Document).where(Document.id == doc_id)
                  .values(lock_expires_at=utcnow() - dt.timedelta(seconds=1)))
    _checkout(bob, doc_id)
    assert _row(doc_id).working_blob_key is None and _dav_locks(doc_id) == []
    with transaction(readonly=True) as s:
        entries = s.execute(select(AuditEntry).where(AuditEntry.action == "document.checked_out")
                            .order_by(AuditEntry.seq)).scalars().all()
    assert [e.actor for e in entries] == ["alice", "alice", "bob"]
    assert "discarded_working_copy" not in entries[0].details | entries[1].details
    assert entries[2].details["discarded_working_copy"] == saved.sha256
    assert entries[2].details["previous_holder"] == "alice"


@pytest.mark.parametrize("ending", ["checked in", "cancelled", "broken", "trashed"])
def test_an_ended_checkout_deletes_its_dav_locks(make_user, admin_user, ending: str) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    _save(alice, doc_id, b"a draft")
    _dav_lock(alice, doc_id)
    with transaction() as s:
        if ending == "checked in":
            service.checkin(s, actor=alice.user, document_id=doc_id)
        elif ending == "cancelled":
            service.cancel_checkout(s, actor=alice.user, document_id=doc_id)
        elif ending == "broken":
            service.cancel_checkout(s, actor=admin_user.user, document_id=doc_id, reason="alice is away")
        else:
            service.trash_document(s, actor=alice.user, document_id=doc_id)
    assert _dav_locks(doc_id) == []  # gone, so no later check-out by alice can bring a stale token back


def test_an_opened_blob_seeks_and_reads_on_in_growing_windows(make_user, monkeypatch) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    _checkout(alice, doc_id)
    data = bytes(range(256)) * (6 * 4096)  # 6 MiB: 24 encrypted segments
    saved = _save(alice, doc_id, data, "big.bin")
    rt = runtime.get_runtime()
    opened: list[tuple[int, int | None]] = []
    real_open = rt.store.open

    def counting_open(key: str, offset: int = 0, length: int | None = None):  # noqa: ANN202
        opened.append((offset, length))
        return real_open(key, offset, length)

    monkeypatch.setattr(rt.store, "open", counting_open)
    with transaction(readonly=True) as s:
        f = vault.open_blob(s, rt, document_id=doc_id, blob_key=saved.blob_key, size=saved.size)
    with f:  # read after the transaction ended, as WebDAV and the validators do
        for offset, n in [(5, 10), (len(data) - 7, 100), (300_000, 70_000), (262_140, 8), (0, 3)]:
            f.seek(offset)
            assert f.read(n) == data[offset : offset + n]
        before = len(opened)
        f.seek(0)
        assert f.read() == data
    # Reading on continues one stream with a growing window: a few store requests, not one per segment.
    assert len(opened) - before <= 12
