"""S3 blob store on the `minio` client: multipart streaming upload, ranged reads."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from minio import Minio
from minio.error import S3Error

from repository.storage import CHUNK, BlobInfo, check_key, read_range

PART_SIZE = 16 * 1024 * 1024


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
    ) -> None:
        self.spool_dir = spool_dir
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region)
        self.bucket = bucket
        if not self.client.bucket_exists(bucket):
            try:
                self.client.make_bucket(bucket)
            except S3Error as exc:
                # Another thread or process created it between the check and here.
                if exc.code != "BucketAlreadyOwnedByYou":
                    raise

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
        """Delete the object."""
        self.client.remove_object(self.bucket, check_key(key))

    def list(self) -> Iterator[BlobInfo]:
        """List every object (incomplete multipart uploads are not objects and are aborted by lifecycle)."""
        for obj in self.client.list_objects(self.bucket, recursive=True):
            yield BlobInfo(obj.object_name, obj.size or 0, obj.last_modified)
