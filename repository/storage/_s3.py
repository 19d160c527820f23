"""S3 blob store on the `minio` client: multipart streaming upload, ranged reads, S3 Object Lock for records."""

from __future__ import annotations

import datetime as dt
import io
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.error import S3Error
from minio.retention import Retention

from repository.storage import CHUNK, BlobInfo, BlobRetainedError, StorageConfigError, check_key, read_range

PART_SIZE = 16 * 1024 * 1024
_PARALLEL_PUTS = 4  # put_many: uploads in flight at once
log = logging.getLogger(__name__)
_GONE = ("NoSuchKey", "NoSuchObject", "NotFound", "NoSuchVersion")
# What S3 (AccessDenied) and MinIO (InvalidRequest "Object is WORM protected") answer a delete of a locked version.
_LOCKED = ("AccessDenied", "InvalidRequest", "ObjectLocked")
_MODES = {"governance": GOVERNANCE, "compliance": COMPLIANCE}


class _ChunkReader(io.RawIOBase):
    """A read()-able view over an iterator of chunks, so the client can stream it in parts."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return b"".join([self._buf, *self._it])
        while len(self._buf) < size:
            nxt = next(self._it, None)
            if nxt is None:
                break
            self._buf += nxt
        out, self._buf = self._buf[:size], self._buf[size:]
        return out


class _S3Writer:
    """Spools the (already encrypted) bytes to a local temp file, uploaded under the key at commit."""

    def __init__(self, store: S3BlobStore) -> None:
        self.store = store
        self.file = tempfile.TemporaryFile(dir=store.spool_dir)
        self.size = 0
        self.done = False

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.size += len(data)

    def read(self, offset: int, length: int | None) -> Iterator[bytes]:
        self.file.flush()
        fd = os.dup(self.file.fileno())
        return _read_fd(fd, offset, length)

    def commit(self, key: str) -> bool:
        check_key(key)
        if self.store.refresh(key):
            self.abort()
            return False
        self.file.flush()
        self.file.seek(0)
        self.store.client.put_object(self.store.bucket, key, self.file, length=self.size, part_size=PART_SIZE)
        self.done = True
        self.file.close()
        return True

    def abort(self) -> None:
        if not self.done:
            self.done = True
            self.file.close()


def _whole_second(when: dt.datetime) -> dt.datetime:
    """`when` in UTC rounded up to the second (S3 keeps retention dates to the millisecond at best)."""
    when = when.astimezone(dt.UTC) if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(math.ceil(when.timestamp()), dt.UTC)


def _read_fd(fd: int, offset: int, length: int | None) -> Iterator[bytes]:
    with os.fdopen(fd, "rb") as f:
        yield from read_range(f, offset, length)


class S3BlobStore:
    """Blobs as objects in one bucket."""

    def __init__(
        self,
        *,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        secure: bool = False,
        region: str | None = None,
        spool_dir: Path | None = None,
        object_lock: str = "off",
    ) -> None:
        self.spool_dir = spool_dir
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region)
        self.bucket = bucket
        self.lock_mode = _MODES.get(object_lock)
        if object_lock != "off" and self.lock_mode is None:
            raise StorageConfigError(f"unknown S3 object lock mode {object_lock!r} (off, governance or compliance)")
        if not self.client.bucket_exists(bucket):
            try:  # object lock can only be enabled when a bucket is created; it turns versioning on
                self.client.make_bucket(bucket, object_lock=self.lock_mode is not None)
            except S3Error as exc:
                # Another thread or process created it between the check and here.
                if exc.code != "BucketAlreadyOwnedByYou":
                    raise
        if self.lock_mode is not None:
            self._require_lock()
        # A versioned bucket keeps a deleted object's bytes behind a delete marker: delete must remove versions.
        self.versioned = self.lock_mode is not None or self.client.get_bucket_versioning(bucket).status is not None

    def _require_lock(self) -> None:
        try:
            self.client.get_object_lock_config(self.bucket)
        except S3Error as exc:
            if exc.code != "ObjectLockConfigurationNotFoundError":
                raise
            raise StorageConfigError(
                f"S3 bucket {self.bucket!r} has no Object Lock, but POSTROOM_S3_OBJECT_LOCK asks for "
                f"{self.lock_mode.lower()} retention of records; object lock can only be enabled when a bucket is "
                "created: point POSTROOM_S3_BUCKET at a new bucket (Postroom creates it with object lock) and copy "
                "the objects over, or set POSTROOM_S3_OBJECT_LOCK=off") from None

    def begin(self, document_id: str) -> _S3Writer:
        """Start a blob whose key is decided at commit."""
        check_key(f"{document_id}/{'0' * 64}")
        if self.spool_dir is not None:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
        return _S3Writer(self)

    def put(self, key: str, chunks: Iterable[bytes]) -> bool:
        """Upload in parts of 16 MiB; the object appears only when the upload completes."""
        check_key(key)
        if self.exists(key):
            return False
        self.client.put_object(self.bucket, key, _ChunkReader(chunks), length=-1, part_size=PART_SIZE)
        return True

    def put_many(self, items: Iterable[tuple[str, Iterable[bytes]]]) -> list[bool]:
        """Upload many blobs, a few at once (each PUT is a round trip); a key given again in the same call is
        stored once (False the second time); on an error the ones uploaded are deleted again."""
        items = list(items)
        first: dict[str, Iterable[bytes]] = {}
        for key, chunks in items:
            first.setdefault(key, chunks)
        with ThreadPoolExecutor(max(1, min(_PARALLEL_PUTS, len(first))), thread_name_prefix="s3-put") as pool:
            futures = {key: pool.submit(self.put, key, chunks) for key, chunks in first.items()}
            wait(futures.values())
        failed = next((f.exception() for f in futures.values() if f.exception() is not None), None)
        if failed is not None:
            for key, future in futures.items():
                if future.exception() is None and future.result():
                    try:  # every one is tried; the upload's error is the one raised
                        self.delete(key)
                    except Exception:
                        log.warning("could not delete %s after a failed put_many; gc will", key, exc_info=True)
            raise failed
        seen: set[str] = set()
        stored = []
        for key, _chunks in items:
            stored.append(key not in seen and futures[key].result())
            seen.add(key)
        return stored

    def open(self, key: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """A ranged GET, streamed."""
        check_key(key)
        if length == 0:
            return iter(())
        try:
            resp = self.client.get_object(self.bucket, key, offset=offset, length=length or 0)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                raise FileNotFoundError(key) from exc
            raise
        return self._stream(resp)

    @staticmethod
    def _stream(resp) -> Iterator[bytes]:  # noqa: ANN001
        try:
            yield from resp.stream(CHUNK)
        finally:
            resp.close()
            resp.release_conn()

    def exists(self, key: str) -> bool:
        """HEAD the object."""
        try:
            self.client.stat_object(self.bucket, check_key(key))
            return True
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise

    def refresh(self, key: str) -> bool:
        """True when the object exists. S3 cannot touch an object's time without copying it, so unlike the
        file store this does not renew a reused orphan's age for gc."""
        return self.exists(key)

    def delete(self, key: str) -> None:
        """Delete the object; in a versioned bucket every version and delete marker of it, by version id, so no
        bytes stay behind a marker. A version under retention or legal hold raises BlobRetainedError (never
        bypassed, not even in governance mode) and stays listed, so gc tries again later."""
        check_key(key)
        if not self.versioned:
            self.client.remove_object(self.bucket, key)
            return
        versions = [o for o in self.client.list_objects(self.bucket, prefix=key, include_version=True)
                    if o.object_name == key]
        refused: list[S3Error] = []
        # Versions first, markers last: a refused version must not stay hidden behind a marker where gc never
        # sees it again.
        for obj in sorted(versions, key=lambda o: bool(o.is_delete_marker)):
            try:
                self.client.remove_object(self.bucket, key, version_id=obj.version_id)
            except S3Error as exc:
                if exc.code in _GONE:
                    continue
                if exc.code not in _LOCKED:
                    raise
                refused.append(exc)
        if refused:
            raise BlobRetainedError(key, refused[0].message or refused[0].code) from refused[0]

    def retain(self, key: str, until: dt.datetime | None) -> bool:
        """Object Lock on the current version: retention in the configured mode until `until` (rounded up to the
        second; kept when already later, since retention only extends), or a legal hold while `until` is None,
        released once a date is set. False when object lock is off, or the date has passed with nothing later."""
        check_key(key)
        if self.lock_mode is None:
            return False
        try:
            version = self.client.stat_object(self.bucket, key).version_id
        except S3Error as exc:
            if exc.code in _GONE:
                raise FileNotFoundError(key) from exc
            raise
        if until is None:
            self.client.enable_object_legal_hold(self.bucket, key, version_id=version)
            return True
        current = self.client.get_object_retention(self.bucket, key, version_id=version)
        target = _whole_second(until)
        if current is not None and current.retain_until_date is not None and current.retain_until_date >= target:
            target = current.retain_until_date
        elif target > dt.datetime.now(dt.UTC):
            # Compliance cannot be weakened to governance: an object already in compliance mode stays in it.
            mode = COMPLIANCE if current is not None and current.mode == COMPLIANCE else self.lock_mode
            self.client.set_object_retention(self.bucket, key, Retention(mode, target), version_id=version)
        protected = target > dt.datetime.now(dt.UTC)
        if self.client.is_object_legal_hold_enabled(self.bucket, key, version_id=version):
            self.client.disable_object_legal_hold(self.bucket, key, version_id=version)
        return protected

    def list(self) -> Iterator[BlobInfo]:
        """List every object: its current version in a versioned bucket, never old versions or delete markers
        (incomplete multipart uploads are not objects and are aborted by lifecycle)."""
        for obj in self.client.list_objects(self.bucket, recursive=True):
            yield BlobInfo(obj.object_name, obj.size or 0, obj.last_modified)
