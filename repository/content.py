"""Receiving content: stream it into a spool while hashing and counting, then identify and check it.

Uploads are identified by their bytes, never their name; archives are checked for bombs and XML for DOCTYPEs
before anything is stored.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import puremagic

from repository.errors import ContentTooLargeError, UnsafeContentError

MEMORY_SPOOL = 1024 * 1024
SPOOL_PREFIX = "upload-"
HEAD = 8192
READ = 1024 * 1024


def _declaration_pattern() -> re.Pattern[bytes]:
    # The same declarations in UTF-8/ASCII and in UTF-16 (either byte order): an XML parser honours the
    # encoding, so checking ASCII bytes alone would let a UTF-16 part through.
    forms = [rb"<!\s*(?:DOCTYPE|ENTITY)"]
    for enc in ("utf-16-le", "utf-16-be"):
        ws = b"(?:" + b"|".join(re.escape(c.encode(enc)) for c in " \t\r\n") + b")*"
        words = b"|".join(re.escape(w.encode(enc)) for w in ("DOCTYPE", "ENTITY"))
        forms.append(re.escape("<!".encode(enc)) + ws + b"(?:" + words + b")")
    return re.compile(b"|".join(forms), re.IGNORECASE)


_DOCTYPE = _declaration_pattern()
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
MAGIC_WINDOW = 2048
# The formats a repository sees most, checked before the general (and slower) signature scan.
_COMMON_MAGIC = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
_OOXML = {
    "word/document.xml": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xl/workbook.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ppt/presentation.xml": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds that a ZIP-based upload must stay within."""

    max_uncompressed: int
    max_entries: int
    max_ratio: float


class Sealer(Protocol):
    """Encrypts content into the blob store as it arrives (see repository.vault.Sealer)."""

    document_id: str

    def write(self, chunk: bytes) -> None: ...
    def close(self) -> None: ...
    def read_plain(self, size: int, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...
    def abort(self) -> None: ...


class ContentStager:
    """Accumulates an upload chunk by chunk: SHA-256, size (with a limit), the first bytes, and either a
    plaintext spool or, given a sealer, the encrypted blob itself (so large content is written once)."""

    def __init__(self, *, max_bytes: int, tmp_dir: Path, sealer: Sealer | None = None) -> None:
        self.max_bytes = max_bytes
        self.tmp_dir = Path(tmp_dir)
        self.sealer = sealer
        self._hash = hashlib.sha256()
        self._mem: bytearray | None = bytearray()
        self._head = b""
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self.size = 0

    def write(self, chunk: bytes) -> None:
        """Add a chunk; ContentTooLargeError (and nothing kept) as soon as the limit is passed."""
        try:
            self.count(chunk)
        except ContentTooLargeError:
            self.discard()
            raise
        self.digest(chunk)
        self.store(chunk)

    # The three steps of write(), for callers that run hashing and storing on separate threads: each step
    # must see the chunks in order, and count() must come first.

    def count(self, chunk: bytes) -> None:
        """Account for a chunk's size (ContentTooLargeError past the limit) and keep the first bytes."""
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise ContentTooLargeError(
                f"the upload is larger than the limit of {self.max_bytes} bytes", limit=self.max_bytes
            )
        if len(self._head) < HEAD:
            self._head += chunk[: HEAD - len(self._head)]

    def digest(self, chunk: bytes) -> None:
        """Feed a chunk to the SHA-256."""
        self._hash.update(chunk)

    def store(self, chunk: bytes) -> None:
        """Keep a chunk: in memory while small, then in the sealed blob or the plaintext spool."""
        if self.sealer is not None:
            self.sealer.write(chunk)
        if self._mem is not None and len(self._mem) + len(chunk) <= MEMORY_SPOOL:
            self._mem += chunk
            return
        if self.sealer is not None:
            self._mem = None  # the sealed blob holds it; keep no plaintext copy
            return
        if self._file is None:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.tmp_dir, prefix=SPOOL_PREFIX)
            self._file, self._path = os.fdopen(fd, "w+b"), Path(name)
            self._file.write(self._mem or b"")
            self._mem = None
        self._file.write(chunk)

    def finish(self, filename: str | None = None) -> StagedContent:
        """Close the spool (or seal the blob) and return the staged content."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.sealer is not None:
            self.sealer.close()
        return StagedContent(
            sha256=self._hash.hexdigest(),
            size=self.size,
            filename=safe_filename(filename),
            head=self._head,
            memory=bytes(self._mem) if self._mem is not None else None,
            path=self._path,
            sealer=self.sealer,
        )

    def discard(self) -> None:
        """Drop whatever was received."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            self._path = None
        if self.sealer is not None:
            self.sealer.abort()
        self._mem = bytearray()


class PlainReader(io.RawIOBase):
    """A seekable plaintext file over encrypted content, decrypting only the segments it reads.

    `read_range(start, end)` streams the plaintext bytes [start, end) (see repository.crypto.decrypt_range).
    Reading on from where the last read ended continues one stream, asking for twice as much each time it runs
    out (a whole download is a few store requests, not one per buffer); a seek elsewhere drops it and starts
    small again (random access, as in a ZIP archive, reads little). Nothing holds the whole content."""

    WINDOW = 256 * 1024
    MAX_WINDOW = 32 * 1024 * 1024

    def __init__(self, read_range: Callable[[int, int | None], Iterator[bytes]], size: int) -> None:
        self._read_range, self._size, self._pos = read_range, size, 0
        self._stream: Iterator[bytes] | None = None
        self._pending = memoryview(b"")
        self._window = self.WINDOW

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        position = max(0, base + offset)
        if position != self._pos:
            self._drop()
            self._window = self.WINDOW
        self._pos = position
        return position

    def readinto(self, buffer) -> int:  # noqa: ANN001
        wanted = min(len(buffer), self._size - self._pos)
        done = 0
        while done < wanted:
            if not self._pending:
                self._pending = memoryview(self._next_chunk(wanted - done))
                if not self._pending:
                    break
            take = min(wanted - done, len(self._pending))
            buffer[done : done + take] = self._pending[:take]
            self._pending = self._pending[take:]
            done += take
            self._pos += take
        return done

    def _next_chunk(self, wanted: int) -> bytes:
        if self._stream is not None:
            chunk = next(self._stream, b"")
            if chunk:
                return chunk
            self._stream = None  # its window was read to the end: read on with a larger one
            self._window = min(self._window * 2, self.MAX_WINDOW)
        end = min(self._size, self._pos + max(wanted, self._window))
        self._stream = iter(self._read_range(self._pos, end))
        return next(self._stream, b"")

    def _drop(self) -> None:
        stream, self._stream, self._pending = self._stream, None, memoryview(b"")
        close = getattr(stream, "close", None)
        if close is not None:
            close()

    def close(self) -> None:
        self._drop()
        super().close()


def open_plain(read_range: Callable[[int, int | None], Iterator[bytes]], size: int) -> BinaryIO:
    """A buffered PlainReader: a seekable plaintext file over encrypted content."""
    return io.BufferedReader(PlainReader(read_range, size), buffer_size=PlainReader.WINDOW)  # type: ignore[return-value]


@dataclass
class StagedContent:
    """Content received in full and not yet stored."""

    sha256: str
    size: int
    filename: str
    head: bytes
    memory: bytes | None
    path: Path | None
    sealer: Sealer | None = None

    @property
    def document_id(self) -> str | None:
        """The document the content was sealed for, if it was encrypted on arrival."""
        return self.sealer.document_id if self.sealer is not None else None

    def chunks(self, size: int = READ) -> Iterator[bytes]:
        """Stream the staged plaintext."""
        if self.memory is not None:
            for i in range(0, len(self.memory), size):
                yield self.memory[i : i + size]
            return
        if self.sealer is not None:
            yield from self.sealer.read_plain(self.size)
            return
        assert self.path is not None
        with self.path.open("rb") as f:
            while chunk := f.read(size):
                yield chunk

    def open(self) -> BinaryIO:
        """A seekable file object over the staged plaintext."""
        if self.memory is not None:
            return io.BytesIO(self.memory)
        if self.sealer is not None:
            sealer, size = self.sealer, self.size
            return open_plain(lambda start, end: sealer.read_plain(size, start, end), size)
        return self.path.open("rb")  # type: ignore[union-attr]

    def release(self) -> None:
        """Delete the spool file, and an uncommitted sealed blob, if any."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None
        if self.sealer is not None:
            self.sealer.abort()


def stage_stream(
    chunks: Iterator[bytes] | BinaryIO, *, max_bytes: int, tmp_dir: Path, filename: str | None = None
) -> StagedContent:
    """Stage content from an iterator of chunks or a binary file object."""
    stager = ContentStager(max_bytes=max_bytes, tmp_dir=tmp_dir)
    if hasattr(chunks, "read"):
        reader = chunks  # type: ignore[assignment]
        chunks = iter(lambda: reader.read(READ), b"")  # type: ignore[union-attr]
    try:
        for chunk in chunks:  # type: ignore[union-attr]
            stager.write(chunk)
    except BaseException:
        stager.discard()
        raise
    return stager.finish(filename)


def safe_filename(name: str | None) -> str:
    """Keep only the last path component, without control characters, at most 255 characters."""
    if not name:
        return ""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    return "" if name in (".", "..") else name[:255]


def detect_media_type(staged: StagedContent, limits: ArchiveLimits) -> str:
    """Identify the content by its bytes and refuse hostile archives and XML; returns the media type."""
    head = staged.head
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        with staged.open() as f:
            return _inspect_zip(f, limits)
    if head.startswith(_UTF16_BOMS) and head[2:].decode("utf-16-le" if head[0] == 0xFF else "utf-16-be",
                                                         "ignore").lstrip().startswith("<"):
        _refuse_doctype(staged.chunks(), "the XML upload")
        return "application/xml"
    for magic, media_type in _COMMON_MAGIC:
        if head.startswith(magic):
            return media_type
    if head and not _looks_like_text(head):
        try:
            return puremagic.magic_string(head[:MAGIC_WINDOW])[0].mime_type or "application/octet-stream"
        except (puremagic.PureError, IndexError, ValueError):
            return "application/octet-stream"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    is_html = stripped.startswith((b"<!doctype html", b"<html"))
    if not is_html and stripped.startswith((b"<?xml", b"<!doctype", b"<!entity")):
        _refuse_doctype(staged.chunks(), "the XML upload")
        return "application/xml"
    if is_html:
        return "text/html"
    if _looks_like_email(stripped):
        return "message/rfc822"
    return "text/plain"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the head is still text.
        return exc.start >= len(head) - 3


def _looks_like_email(head: bytes) -> bool:
    headers = set(re.findall(rb"^([a-z-]+):", head[:4096], re.MULTILINE))
    return b"from" in headers and (b"subject" in headers or b"date" in headers)


def _inspect_zip(f: BinaryIO, limits: ArchiveLimits) -> str:
    try:
        archive = zipfile.ZipFile(f)
    except zipfile.BadZipFile as exc:
        raise UnsafeContentError(f"the upload looks like a ZIP archive but cannot be read: {exc}") from exc
    with archive:
        entries = archive.infolist()
        if len(entries) > limits.max_entries:
            raise UnsafeContentError(f"the archive has {len(entries)} entries; the limit is {limits.max_entries}")
        total = sum(e.file_size for e in entries)
        if total > limits.max_uncompressed:
            raise UnsafeContentError(
                f"the archive expands to {total} bytes; the limit is {limits.max_uncompressed}"
            )
        for e in entries:
            if e.file_size > 1024 * 1024 and e.file_size > limits.max_ratio * max(e.compress_size, 1):
                raise UnsafeContentError(
                    f"archive entry {e.filename!r} has a compression ratio over {limits.max_ratio:g} (a zip bomb?)"
                )
            if e.filename.lower().endswith((".xml", ".rels")):
                try:
                    with archive.open(e) as part:
                        _refuse_doctype(iter(lambda: part.read(READ), b""), f"archive part {e.filename!r}")
                except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
                    raise UnsafeContentError(f"archive entry {e.filename!r} cannot be read: {exc}") from exc
        names = {e.filename for e in entries}
        for part, media_type in _OOXML.items():
            if part in names and "[Content_Types].xml" in names:
                return media_type
        if "mimetype" in names:
            try:
                with archive.open("mimetype") as part:
                    mimetype = part.read(100).decode("ascii", "replace").strip()
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError) as exc:
                raise UnsafeContentError(f"archive entry 'mimetype' cannot be read: {exc}") from exc
            if mimetype.startswith("application/vnd.oasis.opendocument."):
                return mimetype
        return "application/zip"


def _refuse_doctype(chunks: Iterator[bytes], what: str) -> None:
    tail = b""
    for chunk in chunks:
        window = tail + chunk
        if _DOCTYPE.search(window):
            raise UnsafeContentError(f"{what} contains a DOCTYPE or ENTITY declaration, which is not accepted")
        tail = window[-40:]
