"""The blob store contract and encrypted content end to end, on the filesystem and on MinIO."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import random
import threading
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from repository import gc, runtime, service, vault
from repository.config import get_settings
from repository.content import ContentStager, stage_stream
from repository.crypto import SEGMENT
from repository.db import transaction
from repository.errors import ContentTooLargeError, IntegrityError
from repository.models import DataKey, DocumentVersion
from repository.runtime import get_runtime
from repository.storage import BlobStore
from tests.repository.helpers import staged

MIB = 1024 * 1024
MARKER = b"PLAINTEXT-MARKER-4f1c9a-do-not-store-me"


@pytest.fixture
def store(repo_any_store) -> BlobStore:  # noqa: ANN001
    return get_runtime().store


def _key(data: bytes = b"", doc: str | None = None) -> str:
    return f"{doc or uuid.uuid4()}/{hashlib.sha256(data).hexdigest()}"


def _create(account, content) -> str:  # noqa: ANN001
    with transaction() as s:
        return service.create_document(s, actor=account.user, title="Doc", document_type="general",
                                       content=content).id


def _version(account, doc_id: str, label: str | None = None) -> DocumentVersion:  # noqa: ANN001
    with transaction() as s:
        return service.get_version(s, actor=account.user, document_id=doc_id, version=label)


def _read(account, doc_id: str, start: int = 0, end: int | None = None) -> bytes:  # noqa: ANN001
    with transaction() as s:
        v = service.get_version(s, actor=account.user, document_id=doc_id)
        return b"".join(service.read_version(s, version=v, start=start, end=end))


def _raw(store: BlobStore, key: str) -> bytes:
    return b"".join(store.open(key))


# --- the BlobStore contract ---------------------------------------------------------------------------------------


def test_put_then_open_returns_the_same_bytes(store) -> None:  # noqa: ANN001
    data = random.Random(1).randbytes(3 * MIB + 17)
    key = _key(data)
    assert store.put(key, (data[i : i + 100_000] for i in range(0, len(data), 100_000))) is True
    assert store.exists(key)
    assert _raw(store, key) == data


def test_identical_content_is_stored_once(store) -> None:  # noqa: ANN001
    key = _key(b"first")
    assert store.put(key, iter([b"first"])) is True
    assert store.put(key, iter([b"second attempt"])) is False
    assert _raw(store, key) == b"first"
    assert [b.key for b in store.list()] == [key]


def test_ranged_open_returns_exactly_the_range(store) -> None:  # noqa: ANN001
    data = bytes(range(256)) * 9000
    key = _key(data)
    store.put(key, iter([data]))
    for offset, length in [(0, 1), (5, 10), (255, 2), (1_000_000, 1500), (len(data) - 3, 3), (len(data) - 3, None),
                           (1_048_570, 20)]:
        assert b"".join(store.open(key, offset, length)) == data[offset : None if length is None else offset + length]


def test_missing_blob_does_not_exist_and_cannot_be_opened(store) -> None:  # noqa: ANN001
    key = _key(b"never stored")
    assert not store.exists(key)
    with pytest.raises(FileNotFoundError):
        b"".join(store.open(key))


def test_delete_removes_the_blob_and_is_idempotent(store) -> None:  # noqa: ANN001
    keep, drop = _key(b"keep"), _key(b"drop")
    store.put(keep, iter([b"keep"]))
    store.put(drop, iter([b"drop"]))
    store.delete(drop)
    store.delete(drop)
    assert not store.exists(drop) and store.exists(keep)
    assert [b.key for b in store.list()] == [keep]


def test_list_names_every_blob_with_its_size(store) -> None:  # noqa: ANN001
    doc = str(uuid.uuid4())
    blobs = {_key(d, doc): d for d in (b"a", b"bb", b"ccc")} | {_key(b"other doc"): b"other doc"}
    for key, data in blobs.items():
        store.put(key, iter([data]))
    listed = {b.key: b.size for b in store.list()}
    assert listed == {k: len(v) for k, v in blobs.items()}
    assert all(b.modified.tzinfo is not None for b in store.list())


@pytest.mark.parametrize("bad", [
    "../x",
    "../../etc/passwd",
    f"{uuid.uuid4()}/../{'0' * 64}",
    f"../{uuid.uuid4()}/{'0' * 64}",
    f"{uuid.uuid4()}/{'0' * 63}/",
    f"/{uuid.uuid4()}/{'0' * 64}",
    f"{uuid.uuid4()}/{'A' * 64}",
    "",
])
def test_keys_that_could_name_a_path_are_refused(store, bad: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError):
        store.put(bad, iter([b"escape"]))
    for op in (store.exists, store.delete, lambda k: b"".join(store.open(k))):
        with pytest.raises(ValueError):
            op(bad)
    assert list(store.list()) == []


def test_writer_publishes_the_blob_only_at_commit(store) -> None:  # noqa: ANN001
    data = random.Random(5).randbytes(2 * MIB + 3)
    key = _key(data)
    writer = store.begin(key.split("/")[0])
    for chunk in _stage_chunks(data, 300_000):
        writer.write(chunk)
    assert b"".join(writer.read(0, None)) == data
    assert b"".join(writer.read(MIB - 1, 2)) == data[MIB - 1 : MIB + 1]
    assert not store.exists(key)
    assert writer.commit(key) is True
    assert _raw(store, key) == data
    assert [b.key for b in store.list()] == [key]


def test_aborted_writer_leaves_nothing_behind(store) -> None:  # noqa: ANN001
    writer = store.begin(str(uuid.uuid4()))
    writer.write(b"half an upload" * 10_000)
    writer.abort()
    writer.abort()
    assert list(store.list()) == []


def test_writer_commit_onto_an_existing_key_keeps_the_first_blob(store) -> None:  # noqa: ANN001
    key = _key(b"same content")
    store.put(key, iter([b"first copy"]))
    writer = store.begin(key.split("/")[0])
    writer.write(b"second copy")
    assert writer.commit(key) is False
    assert _raw(store, key) == b"first copy"
    assert [b.key for b in store.list()] == [key]


def test_put_many_stores_each_blob_and_skips_keys_that_exist(store) -> None:  # noqa: ANN001
    old = _key(b"already here")
    store.put(old, iter([b"already here"]))
    fresh = [(_key(bytes([i]) * 100), [bytes([i]) * 60, bytes([i]) * 40]) for i in range(5)]
    assert store.put_many([(old, iter([b"another copy"])), *fresh]) == [False] + [True] * 5
    assert _raw(store, old) == b"already here"
    for key, chunks in fresh:
        assert _raw(store, key) == b"".join(chunks)
    assert sorted(b.key for b in store.list()) == sorted([old] + [key for key, _c in fresh])


def test_put_many_that_fails_part_way_leaves_none_of_its_blobs(store) -> None:  # noqa: ANN001
    old = _key(b"kept")
    store.put(old, iter([b"kept"]))

    def broken() -> Iterator[bytes]:
        yield b"half"
        raise OSError("the source went away")

    items = [(_key(b"one"), iter([b"one"])), (_key(b"two"), broken()), (_key(b"three"), iter([b"three"]))]
    with pytest.raises(OSError, match="went away"):
        store.put_many(items)
    assert [b.key for b in store.list()] == [old]  # no blob, no temp file


def _in_shard(data: bytes, shard: str = "ab") -> str:
    return _key(data, doc=f"{shard}{uuid.uuid4()}"[:36])


def test_put_many_on_files_syncs_the_filesystem_twice_not_each_blob(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from repository.storage import _filesystem

    if _filesystem._syncfs is None:
        pytest.skip("syncfs(2) that reports write errors needs Linux >= 5.8; elsewhere put_many fsyncs each blob")
    files = _filesystem.FileBlobStore(tmp_path / "blobs")
    files.put(_in_shard(b"first"), [b"first"])  # creates the shard (a durable mkdir)
    items = [(_in_shard(str(i).encode()), iter([str(i).encode()])) for i in range(50)]
    published: list[int] = []
    real = _filesystem._syncfs

    def syncfs(fd: int) -> int:
        published.append(sum(files._path(key).exists() for key, _c in items))
        return real(fd)

    fsyncs: list[int] = []
    real_fsync = _filesystem.os.fsync
    monkeypatch.setattr(_filesystem, "_syncfs", syncfs)
    monkeypatch.setattr(_filesystem.os, "fsync", lambda fd: fsyncs.append(fd) or real_fsync(fd))
    assert files.put_many(items) == [True] * 50
    # The data is synced before any name points at it, then the names; no fsync per blob.
    assert (published, fsyncs) == ([0, 50], [])
    monkeypatch.setattr(_filesystem, "_syncfs", None)  # where there is none: an fsync per file, one per directory
    assert files.put_many([(_in_shard(b"x"), iter([b"x"])), (_in_shard(b"y"), iter([b"y"]))]) == [True, True]
    assert len(fsyncs) == 3


def test_put_many_on_files_that_fails_after_renaming_removes_what_it_renamed(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from repository.storage import _filesystem

    if _filesystem._syncfs is None:
        pytest.skip("syncfs(2) that reports write errors needs Linux >= 5.8")
    files = _filesystem.FileBlobStore(tmp_path / "blobs")
    calls: list[int] = []
    real = _filesystem._syncfs

    def second_fails(fd: int) -> int:
        calls.append(fd)
        if len(calls) == 2:
            _filesystem.ctypes.set_errno(5)
            return -1
        return real(fd)

    monkeypatch.setattr(_filesystem, "_syncfs", second_fails)
    with pytest.raises(OSError, match="syncfs"):
        files.put_many([(_key(str(i).encode()), iter([b"data"])) for i in range(10)])
    assert list(files.list()) == []


def test_put_many_stores_a_key_given_twice_once(store) -> None:  # noqa: ANN001
    key = _key(b"twice")
    assert store.put_many([(key, iter([b"twice"])), (key, iter([b"twice"]))]) == [True, False]
    assert _raw(store, key) == b"twice"


def test_refresh_tells_whether_the_blob_exists(store) -> None:  # noqa: ANN001
    key = _key(b"refresh me")
    assert store.refresh(key) is False
    store.put(key, iter([b"refresh me"]))
    assert store.refresh(key) is True
    assert _raw(store, key) == b"refresh me"


# --- encrypted documents through the service --------------------------------------------------------------------


def _pseudo_random(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _stage_chunks(data: bytes, chunk: int = MIB) -> Iterator[bytes]:
    view = memoryview(data)
    for i in range(0, len(data), chunk):
        yield bytes(view[i : i + chunk])


def _sealed(account, data: bytes, document_id: str | None = None):  # noqa: ANN001, ANN202
    """Receive content as the API does: encrypted into its blob as it arrives."""
    settings = get_settings()
    with transaction() as s:
        sealer = service.prepare_upload(s, actor=account.user, document_id=document_id)
    stager = ContentStager(max_bytes=settings.max_upload_bytes, tmp_dir=settings.tmp_dir, sealer=sealer)
    for chunk in _stage_chunks(data):
        stager.write(chunk)
    return stager.finish("big.bin")


@pytest.mark.parametrize("received", ["spooled", "sealed on arrival"])
def test_large_document_streams_back_identical_and_ranges_across_segments_are_exact(
    repo_any_store, make_user, received: str,  # noqa: ANN001
) -> None:
    alice = make_user("alice", "author")
    data = _pseudo_random(20 * MIB, seed=20)
    settings = get_settings()
    if received == "spooled":
        content = stage_stream(_stage_chunks(data), max_bytes=settings.max_upload_bytes, tmp_dir=settings.tmp_dir,
                               filename="big.bin")
    else:
        content = _sealed(alice, data)
    doc_id = _create(alice, content)
    content.release()
    version = _version(alice, doc_id)
    assert version.size == len(data) and version.sha256 == hashlib.sha256(data).hexdigest()

    digest, total = hashlib.sha256(), 0
    with transaction() as s:
        v = service.get_version(s, actor=alice.user, document_id=doc_id)
        for chunk in service.read_version(s, version=v):
            digest.update(chunk)
            total += len(chunk)
    assert (total, digest.hexdigest()) == (len(data), version.sha256)

    size = len(data)
    ranges = [
        (0, 1), (SEGMENT - 1, SEGMENT + 1), (SEGMENT, SEGMENT + 1), (SEGMENT - 1, SEGMENT),
        (3 * SEGMENT - 5, 3 * SEGMENT + 5), (SEGMENT + 7, 4 * SEGMENT - 7), (10 * SEGMENT, 11 * SEGMENT),
        (5 * MIB - 1, 5 * MIB + 2 * SEGMENT + 1), (size - SEGMENT - 1, size), (size - 1, size),
        (size - 3, None), (12345, 12345),
    ]
    for start, end in ranges:
        assert _read(alice, doc_id, start, end) == data[start:end], (start, end)


def test_stored_blob_is_ciphertext_not_plaintext(repo_any_store, store, make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    plaintext = MARKER + b"\n" + MARKER * 50_000
    doc_id = _create(alice, staged(plaintext))
    raw = _raw(store, _version(alice, doc_id).blob_key)
    assert len(raw) > len(plaintext)
    assert MARKER not in raw
    assert _read(alice, doc_id) == plaintext


def _tamper(store: BlobStore, backend: str, key: str, position: int) -> None:
    if backend == "file":
        doc, digest = key.split("/")
        # Find the file by its names rather than assume the store's directory layout.
        [path] = [p for p in get_settings().blob_dir.rglob("*")
                  if p.is_file() and doc in str(p) and digest in p.name and ".tmp-" not in p.name]
        with path.open("r+b") as f:
            f.seek(position)
            byte = f.read(1)
            f.seek(position)
            f.write(bytes([byte[0] ^ 0x01]))
        return
    raw = bytearray(_raw(store, key))
    raw[position] ^= 0x01
    store.client.put_object(store.bucket, key, io.BytesIO(bytes(raw)), length=len(raw))  # type: ignore[attr-defined]


@pytest.mark.parametrize("where", ["header", "first segment", "middle segment", "last byte"])
def test_one_flipped_byte_in_stored_ciphertext_fails_integrity(
    repo_any_store, store, make_user, where: str,  # noqa: ANN001
) -> None:
    alice = make_user("alice", "author")
    data = _pseudo_random(3 * SEGMENT + 1000, seed=3)
    doc_id = _create(alice, staged(data))
    key = _version(alice, doc_id).blob_key
    stored = len(_raw(store, key))
    position = {"header": 10, "first segment": 100, "middle segment": 2 * SEGMENT, "last byte": stored - 1}[where]
    _tamper(store, repo_any_store, key, position)
    with pytest.raises(IntegrityError):
        _read(alice, doc_id)


def test_key_rotation_rewraps_every_data_key_and_content_still_reads(
    repo_any_store, make_user,  # noqa: ANN001
) -> None:
    alice = make_user("alice", "author")
    contents = {_create(alice, staged(f"document {i}".encode() * (i + 1))): f"document {i}".encode() * (i + 1)
                for i in range(3)}
    with transaction() as s:
        before = {k.document_id: (k.kek_id, k.wrapped_key) for k in s.execute(select(DataKey)).scalars()}
    assert set(before) == set(contents)
    with transaction() as s:
        new_kek, count = vault.rotate_keys(s, runtime=get_runtime(), actor="test")
    assert count == len(contents)
    with transaction() as s:
        after = {k.document_id: (k.kek_id, k.wrapped_key) for k in s.execute(select(DataKey)).scalars()}
    for doc_id, (kek, wrapped) in after.items():
        assert kek == new_kek != before[doc_id][0]
        assert wrapped != before[doc_id][1]
    runtime.reset()  # a fresh process: the new key ring must come from the saved file
    for doc_id, data in contents.items():
        assert _read(alice, doc_id) == data


def test_keyring_is_kept_apart_from_the_data_and_blobs(repo_any_store, store, make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    _create(alice, staged(b"some content"))
    settings = get_settings()
    keyring = Path(settings.keyring_path).resolve()
    assert keyring.exists()
    assert not keyring.is_relative_to(Path(settings.data_dir).resolve())
    assert not keyring.is_relative_to(Path(settings.blob_dir).resolve())
    secrets = [base64.b64decode(v) for v in json.loads(keyring.read_text())["keys"].values()]
    secrets += [base64.b64encode(k) for k in secrets]
    stored = [p.read_bytes() for p in Path(settings.data_dir).rglob("*") if p.is_file()]
    stored += [_raw(store, b.key) for b in store.list()]
    assert stored
    for blob in stored:
        assert not any(secret in blob for secret in secrets)


def test_gc_removes_only_blobs_no_version_references(repo_any_store, store, make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice, staged(b"referenced content"))
    referenced = _version(alice, doc_id).blob_key
    orphan = _key(b"left by a crash", doc_id)
    store.put(orphan, iter([b"ciphertext that never got a version row"]))

    dry = gc.collect(store, min_age=dt.timedelta(0), dry_run=True)
    assert dry.orphans == [orphan] and dry.removed == 0 and dry.scanned == 2
    assert store.exists(orphan)

    report = gc.collect(store, min_age=dt.timedelta(0))
    assert report.orphans == [orphan] and report.removed == 1
    assert not store.exists(orphan) and store.exists(referenced)
    assert _read(alice, doc_id) == b"referenced content"


def test_gc_leaves_young_orphans_alone(repo_any_store, store, make_user) -> None:  # noqa: ANN001
    orphan = _key(b"upload in flight")
    store.put(orphan, iter([b"upload in flight"]))
    report = gc.collect(store, min_age=dt.timedelta(hours=1))
    assert report.orphans == [] and store.exists(orphan)


def test_same_content_checked_in_again_shares_one_blob(repo_any_store, store, make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice, staged(b"unchanged body"))
    with transaction() as s:
        service.checkout(s, actor=alice.user, document_id=doc_id)
    with transaction() as s:
        service.checkin(s, actor=alice.user, document_id=doc_id, content=staged(b"unchanged body"))
    first, second = _version(alice, doc_id, "1.0"), _version(alice, doc_id, "1.1")
    assert first.blob_key == second.blob_key
    assert [b.key for b in store.list()] == [first.blob_key]
    assert _read(alice, doc_id) == b"unchanged body"


def test_concurrent_first_uploads_on_a_fresh_install_all_read_back(repo_any_store, make_user) -> None:  # noqa: ANN001
    # Nothing has touched the store or the key ring yet: the first uploads arrive together.
    threads_n = 8
    alice = make_user("alice", "author")
    contents = [f"upload {i}".encode() * 100 for i in range(threads_n)]
    barrier = threading.Barrier(threads_n)
    created: dict[int, str] = {}
    errors: list[str] = []

    def upload(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            created[i] = _create(alice, staged(contents[i]))
        except Exception:  # collected for the assertion
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [], "\n".join(map(str, errors))
    runtime.reset()  # read back as a freshly started process would
    assert {i: _read(alice, doc_id) for i, doc_id in created.items()} == dict(enumerate(contents))


def test_upload_over_the_limit_while_encrypting_leaves_no_blob_and_no_spool(
    repo_any_store, store, make_user,  # noqa: ANN001
) -> None:
    alice = make_user("alice", "author")
    settings = get_settings()
    with transaction() as s:
        sealer = service.prepare_upload(s, actor=alice.user)
    stager = ContentStager(max_bytes=3 * MIB, tmp_dir=settings.tmp_dir, sealer=sealer)
    with pytest.raises(ContentTooLargeError):
        for chunk in _stage_chunks(_pseudo_random(5 * MIB, seed=9), 512 * 1024):
            stager.write(chunk)
    assert list(store.list()) == []
    assert not settings.tmp_dir.exists() or list(settings.tmp_dir.iterdir()) == []


def test_content_sealed_on_arrival_is_checked_in_and_reads_back(repo_any_store, store, make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice, staged(b"first"))
    with transaction() as s:
        service.checkout(s, actor=alice.user, document_id=doc_id)
    data = _pseudo_random(2 * MIB + 5, seed=11)
    content = _sealed(alice, data, doc_id)
    with transaction() as s:
        assert service.checkin(s, actor=alice.user, document_id=doc_id, content=content).label == "1.1"
    content.release()
    assert _read(alice, doc_id) == data
    assert len([b for b in store.list() if "/.tmp-" not in b.key]) == 2
