"""Bulk import of files from disk as new documents (`postroom documents import`), a chunk per transaction.

Decisions:
- Like Alfresco's bulk filesystem import: every file under the given paths becomes a document of one type, its
  title the file name unless a shadow file says otherwise. A shadow file `NAME.metadata.json` beside `NAME` may
  give `title`, `metadata` (an object), `customer_ref` (a customer's external reference), `customer_id` and
  `comment`; shadow files are never imported themselves.
- A chunk (at most `chunk_size` files and CHUNK_BYTES of content) goes through `create_documents`: one
  transaction, every table written in bulk, blobs written by a few threads. That is what makes an import of many
  small files several times faster than one transaction per file.
- A file the repository refuses (media type, validators, a bad shadow file, an unknown customer) does not stop
  the import: its chunk is retried one file per transaction, the others are imported and the refused file is
  reported with the reason. Nothing of a refused file is kept.
- Files are read as they are staged; only a chunk's content is held at a time (small files in memory, larger
  ones in spool files under the temp directory).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from repository.access import can_write, deny_write
from repository.content import stage_stream
from repository.db import transaction
from repository.errors import InvalidInputError, RepositoryError
from repository.models import Customer, User
from repository.runtime import get_runtime
from repository.service.bulk import NewDocument, create_documents
from repository.service.document_types import get_type

SHADOW_SUFFIX = ".metadata.json"
SHADOW_MAX_BYTES = 64 * 1024
CHUNK_BYTES = 256 * 1024 * 1024
_SHADOW_KEYS = {"title", "metadata", "customer_ref", "customer_id", "comment"}


@dataclass
class FileImportReport:
    """What an import did: files imported (path -> document id) and files refused (path -> reason)."""

    imported: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    bytes: int = 0


@dataclass(frozen=True)
class _Pending:
    path: Path
    item: NewDocument
    customer_ref: str | None = None


def source_files(paths: Iterable[Path], *, recursive: bool = True) -> Iterator[Path]:
    """The files to import under `paths` (directories walked in name order), without shadow files."""
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                if not recursive:
                    dirs.clear()
                for name in sorted(files):
                    if not name.endswith(SHADOW_SUFFIX) and not name.startswith("."):
                        yield Path(root) / name  # not a regular file (a FIFO, say): refused when prepared
        elif not path.name.endswith(SHADOW_SUFFIX):
            yield path


def import_files(files: Iterable[Path], *, actor: User, document_type: str, customer_id: str | None = None,
                 chunk_size: int = 100,
                 on_chunk: Callable[[FileImportReport], None] | None = None) -> FileImportReport:
    """Import `files` as documents of `document_type`, a chunk per transaction; refused files are reported."""
    if not 1 <= chunk_size <= 1000:
        raise InvalidInputError("the chunk size must be 1-1000 files", field="chunk_size")
    with transaction(readonly=True) as session:  # an unknown type or a denied one refuses every file: say so once
        doc_type = get_type(session, name=document_type)
        if not can_write(actor, doc_type):
            raise deny_write(actor, "document_type", doc_type.id, f"create documents of type {document_type!r}")
        if customer_id is not None and session.get(Customer, customer_id) is None:
            raise InvalidInputError(f"customer {customer_id} does not exist", field="customer_id")
    report = FileImportReport()
    chunk: list[_Pending] = []
    size = 0
    for path in files:
        try:
            pending = _prepare(path, customer_id)
        except (OSError, RepositoryError, ValueError) as exc:
            report.rejected[str(path)] = _reason(exc)
            continue
        chunk.append(pending)
        size += pending.item.content.size
        if len(chunk) >= chunk_size or size >= CHUNK_BYTES:
            _import_chunk(chunk, actor, document_type, report)
            chunk, size = [], 0
            if on_chunk:
                on_chunk(report)
    if chunk:
        _import_chunk(chunk, actor, document_type, report)
        if on_chunk:
            on_chunk(report)
    return report


def _prepare(path: Path, customer_id: str | None) -> _Pending:
    if not path.is_file():  # a FIFO or device would block or never end
        raise InvalidInputError("not a regular file")
    shadow = _read_shadow(path)
    settings = get_runtime().settings
    with path.open("rb") as f:
        content = stage_stream(f, max_bytes=settings.max_upload_bytes, tmp_dir=settings.tmp_dir, filename=path.name)
    item = NewDocument(title=shadow.get("title") or path.name, content=content, metadata=shadow.get("metadata", {}),
                       customer_id=shadow.get("customer_id") or customer_id, comment=shadow.get("comment", ""))
    return _Pending(path, item, shadow.get("customer_ref"))


def _read_shadow(path: Path) -> dict[str, Any]:
    shadow = path.with_name(path.name + SHADOW_SUFFIX)
    if not shadow.is_file():
        return {}
    with shadow.open("rb") as f:
        raw = f.read(SHADOW_MAX_BYTES + 1)
    if len(raw) > SHADOW_MAX_BYTES:
        raise InvalidInputError(f"{shadow.name} is larger than {SHADOW_MAX_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8, nesting too deep, absurd numbers
        raise InvalidInputError(f"{shadow.name} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInputError(f"{shadow.name} must hold a JSON object")
    if unknown := sorted(set(data) - _SHADOW_KEYS):
        raise InvalidInputError(f"{shadow.name}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_SHADOW_KEYS))})")
    if not isinstance(data.get("metadata", {}), dict):
        raise InvalidInputError(f"{shadow.name}: metadata must be a JSON object")
    if wrong := [k for k in sorted(_SHADOW_KEYS - {"metadata"}) if not isinstance(data.get(k, ""), str)]:
        raise InvalidInputError(f"{shadow.name}: {wrong[0]} must be a string")
    return data


def _import_chunk(chunk: list[_Pending], actor: User, document_type: str, report: FileImportReport) -> None:
    try:
        _create(chunk, actor, document_type, report)
    except RepositoryError:
        for one in chunk:  # find the refused file(s): one transaction each
            try:
                _create([one], actor, document_type, report)
            except RepositoryError as exc:
                report.rejected[str(one.path)] = _reason(exc)
    finally:
        for one in chunk:
            one.item.content.release()


def _create(chunk: list[_Pending], actor: User, document_type: str, report: FileImportReport) -> None:
    with transaction() as session:
        ids = create_documents(session, actor=actor, document_type=document_type, items=_items(session, chunk))
    for one, document_id in zip(chunk, ids, strict=True):
        report.imported[str(one.path)] = document_id
        report.bytes += one.item.content.size


def _items(session: Session, chunk: list[_Pending]) -> list[NewDocument]:
    """The chunk's documents, with customers named by external reference (in shadow files) looked up."""
    refs = {one.customer_ref for one in chunk if one.customer_ref is not None}
    found = dict(session.execute(select(Customer.external_ref, Customer.id)
                                 .where(Customer.external_ref.in_(refs))).all()) if refs else {}
    items = []
    for one in chunk:
        if one.customer_ref is None:
            items.append(one.item)
        elif one.customer_ref in found:
            items.append(replace(one.item, customer_id=found[one.customer_ref]))
        else:
            raise InvalidInputError(f"there is no customer with external reference {one.customer_ref!r}",
                                    field="customer_ref")
    return items


def _reason(exc: BaseException) -> str:
    return exc.detail if isinstance(exc, RepositoryError) else str(exc)
