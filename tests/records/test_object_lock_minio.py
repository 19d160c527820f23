"""S3 Object Lock for declared records, against a real MinIO: the storage itself refuses to delete a record's
blobs before its due date (governance and compliance), a legal hold stands in while there is no date, retention
only extends, a versioned bucket's delete leaves nothing behind, and an unlocked bucket fails at start."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from minio import Minio
from minio.commonconfig import COMPLIANCE, ENABLED, GOVERNANCE
from minio.error import S3Error
from minio.retention import Retention
from minio.versioningconfig import VersioningConfig
from sqlalchemy import update

from records.models import RecordInfo
from records.service import declaration, object_lock
from repository import gc, runtime, service
from repository.config import get_settings
from repository.db import get_engine, transaction
from repository.migrate import upgrade
from repository.models import DocumentVersion
from repository.runtime import get_runtime
from repository.storage import BlobRetainedError, StorageConfigError, make_blob_store
from repository.storage._filesystem import FileBlobStore
from repository.storage._s3 import S3BlobStore
from tests.conftest import S3_ACCESS, S3_ENDPOINT, S3_SECRET, _s3_env, configure
from tests.records import support

# MinIO answers InvalidRequest ("Object is WORM protected"), AWS S3 AccessDenied.
REFUSED = ("AccessDenied", "ObjectLocked", "InvalidRequest")


def _raw() -> Minio:
    """A client of our own, outside Postroom's store: what an operator or an attacker with the keys could do."""
    return Minio(S3_ENDPOINT, access_key=S3_ACCESS, secret_key=S3_SECRET, secure=False)


def _versions(store: S3BlobStore, key: str) -> list:
    return [o for o in _raw().list_objects(store.bucket, prefix=key, include_version=True) if o.object_name == key]


def _put(store: S3BlobStore, data: bytes | None = None) -> str:
    data = data if data is not None else uuid.uuid4().bytes
    key = f"{uuid.uuid4()}/{hashlib.sha256(data).hexdigest()}"
    assert store.put(key, [data])
    return key


def _soon(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


def _wait_past(until: dt.datetime) -> None:
    time.sleep(max(0.0, (until - dt.datetime.now(dt.UTC)).total_seconds()) + 1.1)  # dates are whole seconds


def _refused(store: S3BlobStore, key: str):  # noqa: ANN202
    """Neither Postroom's store nor a raw client deleting by version id can remove the blob, and no delete marker
    hides it; returns its one version."""
    with pytest.raises(BlobRetainedError):
        store.delete(key)
    [version] = _versions(store, key)
    with pytest.raises(S3Error) as refused:
        _raw().remove_object(store.bucket, key, version_id=version.version_id)
    assert refused.value.code in REFUSED
    assert store.exists(key) and len(_versions(store, key)) == 1
    return version


def _deletes_once_past(store: S3BlobStore, key: str, until: dt.datetime) -> None:
    _wait_past(until)
    store.delete(key)
    assert _versions(store, key) == [] and not store.exists(key)


@pytest.fixture
def locked(monkeypatch, tmp_path) -> Iterator[Callable[..., S3BlobStore]]:  # noqa: ANN001
    """A migrated SQLite repository on a fresh MinIO bucket with object lock in the given mode (set before the
    store is made, as at start)."""

    def make(mode: str = "governance") -> S3BlobStore:
        _s3_env(monkeypatch)
        monkeypatch.setenv("POSTROOM_S3_OBJECT_LOCK", mode)
        configure(monkeypatch, tmp_path)
        upgrade(get_engine())
        return get_runtime().store

    yield make
    get_engine().dispose()
    runtime.reset()


def _record(due_in: dt.timedelta | None = dt.timedelta(days=365)) -> tuple[str, list[str]]:
    """A declared record (trigger "created", so it falls due `due_in` from now; None: an event trigger that has
    not happened, no due date), and its blob keys."""
    support.start()
    manager = support.user("rita", "records_manager", "author")
    rule = ({"trigger": "event", "event_type": "account_closed"} if due_in is None
            else {"period_value": max(1, due_in.days), "period_unit": "days"})
    support.make_class(manager, "REC-1", ["general"], **rule)
    document_id = support.make_document(manager, data=b"a record that must stay")
    with transaction() as s:
        declaration.declare(s, actor=manager, document_id=document_id)
    with transaction(readonly=True) as s:
        keys = [v.blob_key for v in s.query(DocumentVersion).filter_by(document_id=document_id)]
    return document_id, keys


@pytest.mark.minio
def test_a_declared_records_blob_cannot_be_deleted_before_its_due_date(locked) -> None:  # noqa: ANN001
    store = locked("governance")
    document_id, keys = _record()
    info = support.info(document_id)
    assert info.due_at is not None and info.locked_until == info.due_at
    [key] = keys
    retention = _raw().get_object_retention(store.bucket, key)
    assert retention.mode == GOVERNANCE and retention.retain_until_date >= info.due_at

    _refused(store, key)
    manager = support.user("max", "records_manager")
    with transaction(readonly=True) as s:  # and the record still reads
        version_row = service.get_version(s, actor=manager, document_id=document_id)
        assert b"".join(service.read_version(s, version=version_row)) == b"a record that must stay"


@pytest.mark.minio
def test_gc_leaves_a_locked_orphan_for_a_later_run(locked) -> None:  # noqa: ANN001
    store = locked("governance")
    key = _put(store)
    assert store.retain(key, _soon(60))
    report = gc.collect(store, min_age=dt.timedelta(0))
    assert report.orphans == [key] and report.retained == [key] and report.removed == 0
    assert store.exists(key)


@pytest.mark.minio
@pytest.mark.parametrize(("setting", "mode"), [("governance", GOVERNANCE), ("compliance", COMPLIANCE)])
def test_retention_refuses_everyone_until_the_date_then_every_version_goes(locked, setting, mode) -> None:  # noqa: ANN001
    store = locked(setting)  # compliance objects cannot be deleted by anyone: seconds only, a bucket per test
    key = _put(store)
    until = _soon(2)
    assert store.retain(key, until)
    assert _raw().get_object_retention(store.bucket, key).mode == mode
    version = _refused(store, key)
    with pytest.raises(S3Error):  # nor can anyone shorten it (Postroom never bypasses governance)
        _raw().set_object_retention(store.bucket, key, Retention(mode, _soon(1)), version_id=version.version_id)
    _deletes_once_past(store, key, until)
    assert not store.retain(_put(store), _soon(-5))  # a date already past protects nothing


@pytest.mark.minio
def test_no_due_date_is_a_legal_hold_until_a_date_replaces_it(locked) -> None:  # noqa: ANN001
    store = locked("governance")
    document_id, [key] = _record(due_in=None)
    assert support.info(document_id).due_at is None
    assert _raw().is_object_legal_hold_enabled(store.bucket, key)
    assert support.info(document_id).locked_until is None
    _refused(store, key)

    until = _soon(2)
    with transaction() as s:  # the event happened: the record now falls due (as the lead's recompute does)
        s.execute(update(RecordInfo).where(RecordInfo.document_id == document_id).values(due_at=until))
        assert object_lock.protect(s, document_id=document_id) == 1
    assert not _raw().is_object_legal_hold_enabled(store.bucket, key)
    assert support.info(document_id).locked_until == until
    _refused(store, key)  # now by retention alone
    _deletes_once_past(store, key, until)


@pytest.mark.minio
def test_retention_extends_but_never_shortens(locked) -> None:  # noqa: ANN001
    store = locked("governance")
    document_id, [key] = _record(dt.timedelta(days=30))
    first = support.info(document_id).locked_until
    later = first + dt.timedelta(days=400)
    with transaction() as s:
        s.execute(update(RecordInfo).where(RecordInfo.document_id == document_id).values(due_at=later))
        assert object_lock.protect(s, document_id=document_id) == 1
    assert _raw().get_object_retention(store.bucket, key).retain_until_date >= later
    assert support.info(document_id).locked_until == later

    with transaction() as s:  # reclassified into an earlier due date: the lock keeps the later one
        s.execute(update(RecordInfo).where(RecordInfo.document_id == document_id).values(due_at=first))
        assert object_lock.protect(s, document_id=document_id) == 1
    assert _raw().get_object_retention(store.bucket, key).retain_until_date >= later
    assert support.info(document_id).locked_until == later
    assert store.retain(key, first)  # the store alone agrees, and says the blob is still protected
    assert _raw().get_object_retention(store.bucket, key).retain_until_date >= later


@pytest.mark.minio
def test_protect_ignores_undeclared_documents(locked) -> None:  # noqa: ANN001
    locked("governance")
    support.start()
    manager = support.user("rita", "records_manager", "author")
    support.make_class(manager, "REC-1", ["general"])
    document_id = support.make_document(manager)
    with transaction() as s:
        assert object_lock.protect(s, document_id=document_id) == 0
    assert support.info(document_id).locked_until is None


@pytest.mark.minio
def test_an_existing_bucket_without_object_lock_fails_at_start(locked, monkeypatch) -> None:  # noqa: ANN001
    locked("off")
    bucket = f"postroom-test-{uuid.uuid4().hex[:12]}"
    _raw().make_bucket(bucket)
    monkeypatch.setenv("POSTROOM_S3_BUCKET", bucket)
    monkeypatch.setenv("POSTROOM_S3_OBJECT_LOCK", "compliance")
    runtime.reset()
    with pytest.raises(StorageConfigError, match=rf"{bucket}.*no Object Lock.*POSTROOM_S3_OBJECT_LOCK"):
        make_blob_store(get_settings())


@pytest.mark.minio
def test_object_lock_off_protects_nothing(locked) -> None:  # noqa: ANN001
    store = locked("off")
    key = _put(store)
    assert not store.retain(key, _soon(60))
    store.delete(key)
    assert not store.exists(key)


@pytest.mark.minio
@pytest.mark.parametrize("mode", ["governance", "off"])
def test_delete_in_a_versioned_bucket_leaves_no_version_behind(locked, mode) -> None:  # noqa: ANN001
    store = locked(mode)
    if mode == "off":  # a bucket someone turned versioning on for
        _raw().set_bucket_versioning(store.bucket, VersioningConfig(ENABLED))
        store = make_blob_store(get_runtime().settings)
    key, other = _put(store, b"kept bytes"), _put(store)
    _raw().put_object(store.bucket, key, io.BytesIO(b"second version"), 14)  # two versions of one key
    _raw().remove_object(store.bucket, key)  # and a delete marker on top
    _raw().put_object(store.bucket, key, io.BytesIO(b"third version"), 13)
    assert len(_versions(store, key)) == 4
    assert sorted(b.key for b in store.list()) == sorted([key, other])  # objects, not versions or markers

    store.delete(key)
    assert _versions(store, key) == [] and not store.exists(key)
    assert [b.key for b in store.list()] == [other]
    store.delete(key)  # already gone: no error


def test_the_filesystem_store_cannot_enforce_retention(repo, tmp_path) -> None:  # noqa: ANN001
    store = FileBlobStore(tmp_path / "blobs")
    key = f"{uuid.uuid4()}/{hashlib.sha256(b'x').hexdigest()}"
    assert store.put(key, [b"x"])
    assert store.retain(key, _soon(3600)) is False and store.retain(key, None) is False
    store.delete(key)
    assert not store.exists(key)

    document_id, _ = _record()  # on the file store, declaring locks nothing and notes no date
    with transaction() as s:
        assert object_lock.protect(s, document_id=document_id) == 0
    assert support.info(document_id).locked_until is None
