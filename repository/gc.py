"""Garbage collection of blobs no version or working copy points at (left by a crash between storing content and
commit, or by a working copy that was replaced or discarded), and of destroyed documents' blobs."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from sqlalchemy import select, union

from repository.content import SPOOL_PREFIX
from repository.db import transaction
from repository.models import Document, DocumentVersion
from repository.storage import BlobInfo, BlobRetainedError, BlobStore
from repository.types import utcnow


@dataclass
class GcReport:
    """What a collection found and removed."""

    scanned: int = 0
    orphans: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    removed: int = 0
    retained: list[str] = field(default_factory=list)  # orphans the storage still locks (S3 Object Lock)


def _batches(items: Iterator[BlobInfo], size: int) -> Iterator[list[BlobInfo]]:
    while batch := list(islice(items, size)):
        yield batch


def collect_scratch(tmp_dir: Path, *, min_age: dt.timedelta, dry_run: bool = False) -> int:
    """Remove upload spool files older than `min_age` left in the scratch directory by a crash."""
    if not tmp_dir.is_dir():
        return 0
    cutoff = (utcnow() - min_age).timestamp()
    removed = 0
    for entry in os.scandir(tmp_dir):
        if entry.name.startswith(SPOOL_PREFIX) and entry.is_file() and entry.stat().st_mtime <= cutoff:
            if not dry_run:
                Path(entry.path).unlink(missing_ok=True)
            removed += 1
    return removed


def collect(store: BlobStore, *, min_age: dt.timedelta, dry_run: bool = False) -> GcReport:
    """Remove blobs older than `min_age` that no version or working copy references, and abandoned partial writes.

    References are checked batch by batch, each in its own short read-only transaction, so a long collection
    never holds the database; `min_age` (and the store's refresh of reused blobs) keeps in-flight uploads safe.
    """
    report = GcReport()
    cutoff = utcnow() - min_age
    for batch in _batches(store.list(), 500):
        report.scanned += len(batch)
        old = [b for b in batch if b.modified <= cutoff]
        partial = [b.key for b in old if "/.tmp-" in b.key]
        keys = [b.key for b in old if "/.tmp-" not in b.key]
        stmt = union(  # a destroyed document's blobs are garbage even though its version rows remain
            select(DocumentVersion.blob_key).join(Document, Document.id == DocumentVersion.document_id)
            .where(DocumentVersion.blob_key.in_(keys), Document.state != "destroyed"),
            select(Document.working_blob_key).where(Document.working_blob_key.in_(keys)),
        )
        with transaction(readonly=True) as session:
            used = set(session.execute(stmt).scalars())
        orphans = [k for k in keys if k not in used]
        report.orphans += orphans
        report.partial += partial
        if dry_run:
            continue
        for key in orphans:
            try:
                store.delete(key)
            except BlobRetainedError:  # a record's blob locked past its disposition: a later run takes it
                report.retained.append(key)
                continue
            report.removed += 1
        for key in partial:
            store.delete_partial(key)  # type: ignore[attr-defined]
            report.removed += 1
    return report
