"""Filesystem blob store: temp file, fsync, atomic rename, fsync of the directory."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from repository.storage import CHUNK, BlobInfo, check_key

_TMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileBlobStore:
    """Blobs as files under a root directory, sharded by the first two characters of the document id."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        doc, digest = check_key(key).split("/")
        return self.root / doc[:2] / doc / digest

    def put(self, key: str, chunks: Iterable[bytes]) -> bool:
        """Write to a temp file beside the target, fsync, rename into place, fsync the directory."""
        path = self._path(key)
        if path.exists():
            return False
        created_dirs = not path.parent.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)
        if created_dirs:
            _fsync_dir(path.parent.parent)
            _fsync_dir(self.root)
        return True

    def open(self, key: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream the file from offset."""
        path = self._path(key)
        if not path.exists():
            raise FileNotFoundError(key)
        return self._read(path, offset, length)

    @staticmethod
    def _read(path: Path, offset: int, length: int | None) -> Iterator[bytes]:
        with path.open("rb") as f:
            f.seek(offset)
            remaining = length
            while remaining is None or remaining > 0:
                chunk = f.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def exists(self, key: str) -> bool:
        """True when the file exists."""
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        """Unlink the file and, if now empty, its directory."""
        path = self._path(key)
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass

    def list(self) -> Iterator[BlobInfo]:
        """Walk the tree; partial writes are listed under their temp names with a `.tmp-` marker."""
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                full = Path(dirpath) / name
                try:
                    st = full.stat()
                except FileNotFoundError:
                    continue
                rel = full.relative_to(self.root).parts
                key = f"{rel[1]}/{name}" if len(rel) == 3 else str(full.relative_to(self.root))
                yield BlobInfo(key, st.st_size, dt.datetime.fromtimestamp(st.st_mtime, dt.UTC))

    def delete_partial(self, key: str) -> None:
        """Remove a leftover temp file named by `list()` (`<document id>/.tmp-...`)."""
        doc, _, name = key.partition("/")
        check_key(f"{doc}/{'0' * 64}")
        if not name.startswith(_TMP_PREFIX) or "/" in name:
            raise ValueError(f"not a partial write: {key!r}")
        (self.root / doc[:2] / doc / name).unlink(missing_ok=True)
