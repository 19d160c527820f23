"""Blob storage: a small interface with filesystem and S3 implementations chosen by settings."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from repository.config import Settings

_KEY = re.compile(r"^[0-9a-f-]{36}/[0-9a-f]{64}$")
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob's key, size and last write time."""

    key: str
    size: int
    modified: dt.datetime


class StorageConfigError(RuntimeError):
    """The configured storage cannot do what the settings ask (found when the store is made, at start)."""


class BlobRetainedError(Exception):
    """The storage refuses to delete a blob still under retention or legal hold (S3 Object Lock)."""

    def __init__(self, key: str, detail: str = "") -> None:
        super().__init__(f"blob {key} is under S3 Object Lock and cannot be deleted yet{': ' if detail else ''}"
                         f"{detail}")
        self.key = key


class BlobWriter(Protocol):
    """A blob being written whose key is only known at the end (content addressing)."""

    def write(self, data: bytes) -> None:
        """Append bytes."""

    def read(self, offset: int, length: int | None) -> Iterator[bytes]:
        """Stream back bytes written so far."""

    def commit(self, key: str) -> bool:
        """Make the blob durable under key; False (and the bytes dropped) when the key already exists."""

    def abort(self) -> None:
        """Drop what was written; no effect after commit."""


class BlobStore(Protocol):
    """Content storage addressed by key; every method streams."""

    def begin(self, document_id: str) -> BlobWriter:
        """Start writing a blob of this document whose key is decided at commit."""

    def put(self, key: str, chunks: Iterable[bytes]) -> bool:
        """Store the chunks under key durably; False (and nothing written) when the key already exists."""

    def put_many(self, items: Iterable[tuple[str, Iterable[bytes]]]) -> list[bool]:
        """Store many (key, chunks) durably, each as `put` would; when it returns all of them are durable, and on
        an error none of them is left."""

    def open(self, key: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream the stored bytes from offset, length bytes or to the end."""

    def exists(self, key: str) -> bool:
        """True when a blob is stored under key."""

    def refresh(self, key: str) -> bool:
        """Mark an existing blob as just used (gc spares young blobs); False when it does not exist."""

    def delete(self, key: str) -> None:
        """Remove the blob (every stored version of it); no error when it is already gone; BlobRetainedError while
        the storage protects it."""

    def retain(self, key: str, until: dt.datetime | None) -> bool:
        """Have the storage refuse to delete the blob until `until` (only ever extended), or indefinitely while
        `until` is None; False when this store cannot enforce retention (or nothing is left to protect)."""

    def list(self) -> Iterator[BlobInfo]:
        """Every stored blob, including abandoned partial writes."""


def read_range(f: BinaryIO, offset: int, length: int | None) -> Iterator[bytes]:
    """Stream `length` bytes (or to the end) of an open file from `offset`, a chunk at a time."""
    f.seek(offset)
    remaining = length
    while remaining is None or remaining > 0:
        chunk = f.read(CHUNK if remaining is None else min(CHUNK, remaining))
        if not chunk:
            return
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk


def check_key(key: str) -> str:
    """Refuse any key that is not `<document uuid>/<sha256>`, so a key can never name a path."""
    if not _KEY.match(key):
        raise ValueError(f"invalid blob key {key!r}")
    return key


def blob_key(document_id: str, sha256: str) -> str:
    """The key of a document's content with the given plaintext SHA-256."""
    return check_key(f"{document_id}/{sha256}")


def make_blob_store(settings: Settings) -> BlobStore:
    """The blob store the settings ask for."""
    if settings.blob_store == "s3":
        from repository.storage._s3 import S3BlobStore

        return S3BlobStore(
            endpoint=settings.s3_endpoint,
            bucket=settings.s3_bucket,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=settings.s3_secure,
            region=settings.s3_region,
            spool_dir=settings.tmp_dir,
            object_lock=settings.s3_object_lock,
        )
    from repository.storage._filesystem import FileBlobStore

    return FileBlobStore(settings.blob_dir)
