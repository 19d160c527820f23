"""Transfer packages: the documents a batch transfers, with their metadata and audit history, in one ZIP per
batch (for an archive), written before any of them is destroyed.

Layout: `documents/<id>/v<label>/<file name>` (the natives, streamed), `documents/<id>/metadata.json`,
`documents/<id>/audit.json`, and `manifest.json` with the SHA-256 of every other file. The ZIP is written under
a temporary name, fsynced and renamed, so a package either exists whole or not at all.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from records import clock
from records.models import RecordInfo, RetentionClass
from repository.config import get_settings
from repository.content import safe_filename
from repository.db import transaction
from repository.models import AuditEntry, Document, DocumentType, DocumentVersion
from repository.service.documents import read_version

FORMAT = "postroom-transfer/1"
_ZIP64_FROM = 1 << 31


@dataclass(frozen=True)
class Package:
    """A written transfer package: where it is, its own SHA-256, and how many documents it holds."""

    path: Path
    sha256: str
    documents: int


def package_path(batch_id: str) -> Path:
    """Where a batch's transfer package goes."""
    return get_settings().resolved_transfer_dir / f"{batch_id}.zip"


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _put(zf: zipfile.ZipFile, name: str, chunks: Iterable[bytes], manifest: dict[str, str], *,
         size: int = 0) -> None:
    """Write one member from a stream of chunks, hashing as it goes."""
    info = zipfile.ZipInfo(name, date_time=time.gmtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    digest = hashlib.sha256()
    with zf.open(info, "w", force_zip64=size >= _ZIP64_FROM) as out:
        for chunk in chunks:
            digest.update(chunk)
            out.write(chunk)
    manifest[name] = digest.hexdigest()


def _json(value: Any) -> Iterator[bytes]:
    yield json.dumps(value, indent=2, ensure_ascii=False, default=str).encode()


def _record(info: RecordInfo | None, cls: RetentionClass | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {"class": cls.code if cls else None, "class_title": cls.title if cls else None,
            "trigger_at": _when(info.trigger_at), "due_at": _when(info.due_at),
            "declared_at": _when(info.declared_at), "declared_by": info.declared_by,
            "legal_basis": cls.legal_basis if cls else None}


def _add_document(session: Session, zf: zipfile.ZipFile, document_id: str, manifest: dict[str, str]) -> None:
    document = session.get(Document, document_id)
    doc_type = session.get(DocumentType, document.document_type_id)
    versions = list(session.execute(select(DocumentVersion).where(DocumentVersion.document_id == document_id)
                                    .order_by(DocumentVersion.major, DocumentVersion.minor)).scalars())
    info = session.get(RecordInfo, document_id)
    cls = session.get(RetentionClass, info.class_id) if info is not None and info.class_id else None
    base = f"documents/{document_id}"
    listed = []
    for version in versions:
        member = f"{base}/v{version.label}/{safe_filename(version.filename) or 'content'}"
        _put(zf, member, read_version(session, version=version), manifest, size=version.size)
        listed.append({"label": version.label, "sha256": version.sha256, "size": version.size,
                       "media_type": version.media_type, "filename": version.filename,
                       "created_at": _when(version.created_at), "comment": version.comment, "file": member})
    _put(zf, f"{base}/metadata.json", _json({
        "id": document.id, "title": document.title, "document_type": doc_type.name,
        "customer_id": document.customer_id, "metadata": document.meta, "created_at": _when(document.created_at),
        "current_version": document.version_label, "versions": listed, "record": _record(info, cls)}), manifest)
    rows = session.execute(select(AuditEntry).where(AuditEntry.object_id == document_id)
                           .order_by(AuditEntry.seq)).scalars()
    _put(zf, f"{base}/audit.json", _json([
        {"seq": r.seq, "at": _when(r.at), "actor": r.actor, "action": r.action, "object_type": r.object_type,
         "details": r.details, "prev_hash": r.prev_hash, "hash": r.hash} for r in rows]), manifest)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _remove_stale(directory: Path, batch_id: str, stale_after: dt.timedelta) -> None:
    """Partial packages of runs that crashed while writing (a live writer keeps its file's mtime fresh)."""
    cutoff = time.time() - stale_after.total_seconds()
    for stale in directory.glob(f".{batch_id}.*.part"):
        with contextlib.suppress(OSError):
            if stale.stat().st_mtime < cutoff:
                stale.unlink()


def build_package(engine: Engine | None, *, batch_id: str, document_ids: list[str],
                  on_document: Callable[[], None] | None = None,
                  stale_after: dt.timedelta = dt.timedelta(minutes=10)) -> Package:
    """Write the transfer package of a batch's documents, reading them in one read-only transaction (nothing
    is destroyed here); `on_document` runs after each document (to renew a lease)."""
    path = package_path(batch_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path.parent, batch_id, stale_after)
    partial = path.parent / f".{batch_id}.{secrets.token_hex(4)}.part"
    manifest: dict[str, str] = {}
    try:
        with transaction(engine, readonly=True) as session, partial.open("wb") as raw:
            with zipfile.ZipFile(raw, "w", allowZip64=True) as zf:
                for document_id in document_ids:
                    _add_document(session, zf, document_id, manifest)
                    if on_document is not None:
                        on_document()
                _put(zf, "manifest.json", _json({
                    "format": FORMAT, "batch_id": batch_id, "created_at": clock.now().isoformat(),
                    "documents": document_ids, "files": manifest}), {})
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, path)
        _fsync_dir(path.parent)
    finally:
        partial.unlink(missing_ok=True)
    return Package(path, _sha256_of(path), len(document_ids))
