"""The production ZIP of an export, streamed to disk (temporary name, fsync, rename): per document
`NATIVES/<Bates>.<ext>` (the exported version's content), `TEXT/<Bates>.txt` (its extracted text, UTF-8),
`IMAGES/<Bates>.pdf` (the native again when it is a PDF: letters are archived as PDFs), then `DATA/export.dat`,
`DATA/export.opt` (loadfiles.py) and `manifest.json` with the SHA-256 and size of every other file and the
package hash: SHA-256 over the lines `<sha256>  <path>\\n` sorted by path (the `sha256sum` format)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import mimetypes
import os
import re
import secrets
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pikepdf
from sqlalchemy.orm import Session

from repository.config import get_settings
from repository.crypto import SegmentEncryptor, decrypt_range, new_data_key
from repository.errors import IntegrityError
from repository.models import DocumentVersion
from repository.runtime import get_runtime
from repository.service.documents import read_version
from repository.storage import read_range
from repository.vault import open_blob
from search.matters import loadfiles
from search.matters.text import current_text

FORMAT = "postroom-production/1"
PDF = "application/pdf"
_STORED = ("application/pdf", "application/zip", "image/", "video/", "audio/",
           "application/vnd.openxmlformats-officedocument.")
_ZIP64_FROM = 1 << 31
_EXT = re.compile(r"^[a-z0-9]{1,10}$")


def exports_dir() -> Path:
    """Where export packages are written: <data dir>/exports."""
    return get_settings().data_dir / "exports"


def export_path(export_id: str) -> Path:
    """The finished ZIP of an export."""
    return exports_dir() / f"{export_id}.zip"


def extension(version: DocumentVersion) -> str:
    """The native's file extension: the uploaded name's, else one for its media type, else bin."""
    suffix = Path(version.filename or "").suffix.lower().lstrip(".")
    if _EXT.match(suffix):
        return suffix
    guessed = mimetypes.guess_extension(version.media_type.split(";")[0].strip())
    return guessed.lstrip(".") if guessed and _EXT.match(guessed.lstrip(".")) else "bin"


def page_count(session: Session, version: DocumentVersion) -> int:
    """Pages of a PDF version (read with pikepdf, decrypting only what it reads); 0 when it is not a readable
    PDF (it is produced as a native without an image)."""
    if version.media_type.split(";")[0].strip() != PDF:
        return 0
    try:
        with contextlib.closing(open_blob(session, get_runtime(), document_id=version.document_id,
                                          blob_key=version.blob_key, size=version.size)) as fp, \
                pikepdf.open(fp) as pdf:
            return len(pdf.pages)
    except (pikepdf.PdfError, ValueError, OSError):
        return 0


def package_hash(files: dict[str, dict[str, Any]]) -> str:
    """SHA-256 over `<sha256>  <path>` lines (sorted by path, each ended by a newline)."""
    lines = "".join(f"{files[name]['sha256']}  {name}\n" for name in sorted(files))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Item:
    """One document to produce: the exact version, what the load file says about it, and its Bates range."""

    document_id: str
    version: DocumentVersion
    title: str
    document_type: str
    custodian: str
    created_at: dt.datetime
    begin: int
    pages: int  # pages of its PDF image; 0 when it has no image (one Bates number)

    @property
    def end(self) -> int:
        """The last Bates number of the document."""
        return self.begin + max(self.pages, 1) - 1


@dataclass(frozen=True)
class Production:
    """What is being produced: the export, its matter and its documents in Bates order."""

    export_id: str
    volume: str
    matter_id: str
    matter_name: str
    prefix: str
    requested_by: str
    requested_at: dt.datetime
    items: list[Item]


@dataclass(frozen=True)
class Package:
    """A written package: its path, the SHA-256 and size of the ZIP, the package hash of its manifest, and the
    data key of the encrypted file."""

    path: Path
    sha256: str
    size: int
    package_sha256: str
    files: int
    data_key: bytes  # what the file on disk is encrypted with; the caller keeps it wrapped by the key ring


class _Zip:
    """Writes members from streams, recording the SHA-256 and size of each."""

    def __init__(self, zf: zipfile.ZipFile) -> None:
        self.zf = zf
        self.files: dict[str, dict[str, Any]] = {}

    def put(self, name: str, chunks: Iterable[bytes], *, media_type: str = "text/plain", size: int = 0,
            md5: bool = False) -> tuple[str, str | None]:
        info = zipfile.ZipInfo(name, date_time=time.gmtime()[:6])
        info.compress_type = zipfile.ZIP_STORED if media_type.startswith(_STORED) else zipfile.ZIP_DEFLATED
        sha, md, written = hashlib.sha256(), hashlib.md5(usedforsecurity=False) if md5 else None, 0
        with self.zf.open(info, "w", force_zip64=size >= _ZIP64_FROM) as out:
            for chunk in chunks:
                sha.update(chunk)
                if md is not None:
                    md.update(chunk)
                written += len(chunk)
                out.write(chunk)
        self.files[name] = {"sha256": sha.hexdigest(), "size": written}
        return sha.hexdigest(), md.hexdigest() if md is not None else None

    def put_file(self, name: str, spool: IO[bytes]) -> None:
        spool.seek(0)
        self.put(name, iter(lambda: spool.read(1 << 20), b""))


def _document(session: Session, z: _Zip, production: Production, item: Item, dat: IO[bytes],
              opt: IO[bytes]) -> dict[str, Any]:
    version, prefix = item.version, production.prefix
    key = loadfiles.bates(prefix, item.begin)
    native = f"NATIVES/{key}.{extension(version)}"
    sha, md5 = z.put(native, read_version(session, version=version), media_type=version.media_type,
                     size=version.size, md5=True)
    if sha != version.sha256:
        raise IntegrityError(f"the content of document {item.document_id} version {version.label} does not match "
                             "its recorded SHA-256; the export stopped")
    body, status = current_text(session, version)
    text_member = f"TEXT/{key}.txt"
    z.put(text_member, [body.encode("utf-8")])
    image = None
    if item.pages:
        image = f"IMAGES/{key}.pdf"
        z.put(image, read_version(session, version=version), media_type=PDF, size=version.size)
        keys = [loadfiles.bates(prefix, item.begin + i) for i in range(item.pages)]
        opt.write(loadfiles.opt_lines(keys, production.volume, loadfiles.load_path(image)))
    dat.write(loadfiles.dat_record([
        key, loadfiles.bates(prefix, item.end), item.custodian, item.document_type, item.created_at.date().isoformat(),
        item.title, md5 or "", sha, loadfiles.load_path(native), loadfiles.load_path(text_member)]))
    return {"document_id": item.document_id, "version": version.label, "begbates": key,
            "endbates": loadfiles.bates(prefix, item.end), "pages": item.pages, "native": native,
            "text": text_member, "text_status": status, "image": image, "sha256": sha, "md5": md5,
            "media_type": version.media_type, "filename": version.filename}


class _SealingFile:
    """A write-only, unseekable file that hashes the ZIP passing through, so its SHA-256 is known when it is
    written (zipfile then streams: sizes and CRCs follow each member in a data descriptor), and stores it
    encrypted like any repository content (segmented AES-256-GCM under its own data key)."""

    def __init__(self, raw: IO[bytes], data_key: bytes) -> None:
        self.raw, self.digest, self.size = raw, hashlib.sha256(), 0
        self.sealer = SegmentEncryptor(data_key)
        raw.write(self.sealer.header)

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        for segment in self.sealer.update(data):
            self.raw.write(segment)
        return len(data)

    def seal(self) -> None:
        """Write the final segment."""
        self.raw.write(self.sealer.finalize())

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.raw.flush()


def write_package(session: Session, production: Production, *,
                  on_document: Callable[[], None] | None = None) -> Package:
    """Write the production ZIP, encrypted (reading content in the caller's read-only transaction); a crash
    leaves only a `.part` file, removed by the next attempt at the same export."""
    path = export_path(production.export_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{production.export_id}.*.part"):
        stale.unlink(missing_ok=True)  # the caller holds the export's lease: an earlier attempt's leftovers
    partial = path.parent / f".{production.export_id}.{secrets.token_hex(4)}.part"
    documents: list[dict[str, Any]] = []
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw, tempfile.TemporaryFile(dir=path.parent) as dat, \
                tempfile.TemporaryFile(dir=path.parent) as opt:
            data_key = new_data_key()
            out = _SealingFile(raw, data_key)
            with zipfile.ZipFile(out, "w", allowZip64=True) as zf:  # type: ignore[arg-type]
                z = _Zip(zf)
                dat.write(loadfiles.dat_header())
                for item in production.items:
                    documents.append(_document(session, z, production, item, dat, opt))
                    if on_document is not None:
                        on_document()
                z.put_file("DATA/export.dat", dat)
                z.put_file("DATA/export.opt", opt)
                files = dict(z.files)
                digest = package_hash(files)
                z.put("manifest.json", [json.dumps(_manifest(production, documents, files, digest), indent=2,
                                                   ensure_ascii=False).encode("utf-8")], media_type="application/json")
            out.seal()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
    finally:
        partial.unlink(missing_ok=True)
    return Package(path, out.digest.hexdigest(), out.size, digest, len(files) + 1, data_key)


def _manifest(production: Production, documents: list[dict[str, Any]], files: dict[str, dict[str, Any]],
              digest: str) -> dict[str, Any]:
    first, last = production.items[0], production.items[-1]
    return {"format": FORMAT,
            "matter": {"id": production.matter_id, "name": production.matter_name, "bates_prefix": production.prefix},
            "export": {"id": production.export_id, "volume": production.volume,
                       "requested_by": production.requested_by,
                       "requested_at": production.requested_at.isoformat(),
                       "written_at": dt.datetime.now(dt.UTC).isoformat()},
            "bates": {"begin": loadfiles.bates(production.prefix, first.begin),
                      "end": loadfiles.bates(production.prefix, last.end)},
            "load_files": {"dat": "DATA/export.dat", "opt": "DATA/export.opt", "dat_encoding": "utf-8 with BOM",
                           "dat_delimiters": {"field": "U+0014", "quote": "U+00FE", "newline": "U+00AE"},
                           "record_end": "CRLF"},
            "documents": documents, "files": files,
            "package_hash": {"algorithm": "sha256 over '<sha256>  <path>\\n' lines of `files`, sorted by path",
                             "sha256": digest}}


def read_plain(path: Path, chunk: int = 1 << 20) -> Iterator[bytes]:
    """A package file written before packages were encrypted, streamed as it is (opened now)."""
    source = path.open("rb")

    def plain() -> Iterator[bytes]:
        with source:
            while data := source.read(chunk):
                yield data

    return plain()


def read_package(path: Path, data_key: bytes, size: int) -> Iterator[bytes]:
    """The plaintext ZIP of an encrypted package file, streamed and authenticated segment by segment. The file
    is opened now, so a package removed meanwhile fails here rather than mid-stream."""
    source = path.open("rb")

    def plain() -> Iterator[bytes]:
        with source:
            yield from decrypt_range(data_key, functools.partial(read_range, source), size)

    return plain()
