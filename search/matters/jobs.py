"""Building export packages in the background (a job wrapper: it owns its transactions, like records' disposition
runner). `run_exporter` loops in `serve` and `worker` (api.app.start_background).

A runner claims the oldest queued export, or a running one whose lease ran out (its runner died), under a lease
renewed while it writes. It checks every document again (not destroyed; the requester still may read it),
counts the pages of the PDFs, reserves the export's Bates range from the matter's counter (once: a resumed
export keeps its range), writes the ZIP (package.py) and completes the export, audited and in the chain of
custody. A restart finds the export queued or its lease expired and starts it again; a stop request puts it back
in the queue. An export is given up (failed) after MAX_ATTEMPTS claims, or at once when a document cannot be
produced."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import replace
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from records.service.disposition.execute import new_owner
from repository import events, vault
from repository.config import get_settings
from repository.db import is_postgres, transaction
from repository.errors import RepositoryError
from repository.models import Document, DocumentType, DocumentVersion, User
from repository.runtime import get_runtime
from repository.service.documents import DESTROYED, readable
from repository.types import utcnow
from search.matters import custody
from search.matters.exports import COMPLETED, EXPIRED, EXPORT_KEYS, FAILED, QUEUED, RUNNING
from search.matters.models import Matter, MatterExport, MatterExportItem
from search.matters.package import Item, Production, export_path, page_count, write_package

log = logging.getLogger(__name__)
SYSTEM = "system:search"
LEASE = dt.timedelta(minutes=5)
RENEW_EVERY = 30.0  # seconds between lease renewals while writing
MAX_ATTEMPTS = 3


class LeaseLostError(Exception):
    """Another runner took the export (this one stopped renewing for longer than the lease)."""


class StopRequestedError(Exception):
    """The process is stopping; the export goes back to the queue."""


class ExportRefusedError(Exception):
    """A document of the export cannot be produced; the export fails with this reason."""


def _claim(engine: Engine, owner: str) -> str | None:
    """Take the next export under a lease; None when there is none (one given up on counts as done)."""
    now = utcnow()
    with transaction(engine) as session:
        stmt = (select(MatterExport).where(or_(MatterExport.state == QUEUED, and_(
            MatterExport.state == RUNNING, MatterExport.lease_until < now))).order_by(MatterExport.requested_at)
            .limit(1))
        if is_postgres(session):
            stmt = stmt.with_for_update(skip_locked=True)
        export = session.execute(stmt).scalar_one_or_none()
        if export is None:
            return None
        export.attempts += 1
        if export.attempts > MAX_ATTEMPTS:
            _fail(session, export, f"given up after {MAX_ATTEMPTS} attempts that did not finish")
            return ""
        export.state, export.lease_owner, export.lease_until = RUNNING, owner, now + LEASE
        export.started_at = export.started_at or now
        return export.id


def _leased(session: Session, export_id: str, owner: str) -> MatterExport:
    export = session.get(MatterExport, export_id, with_for_update=True, populate_existing=True)
    if export is None or export.state != RUNNING or export.lease_owner != owner:
        raise LeaseLostError(export_id)
    return export


def _fail(session: Session, export: MatterExport, reason: str) -> None:
    matter = custody.lock(session, export.matter_id)
    export.state, export.error, export.lease_owner, export.lease_until = FAILED, reason[:2000], None, None
    custody.record(session, matter, actor=SYSTEM, action="export.failed", details={
        "export_id": export.id, "volume": export.volume, "requested_by": export.requested_by, "error": reason})


def _prepare(engine: Engine, export_id: str) -> tuple[Production, bool]:
    """What to produce, every document checked again; whether the Bates range still has to be reserved."""
    with transaction(engine, readonly=True) as session:
        export = session.get(MatterExport, export_id)
        matter = session.get(Matter, export.matter_id)
        requester = session.execute(select(User).where(User.username == export.requested_by)).scalar_one_or_none()
        rows = session.execute(select(MatterExportItem, Document, DocumentVersion)
                               .join(Document, Document.id == MatterExportItem.document_id)
                               .join(DocumentVersion, DocumentVersion.id == MatterExportItem.version_id)
                               .where(MatterExportItem.export_id == export_id)
                               .order_by(MatterExportItem.position)).all()
        types = dict(session.execute(select(DocumentType.id, DocumentType.name)).all())
        creators = dict(session.execute(select(User.id, User.username).where(
            User.id.in_({document.created_by for _, document, _ in rows}))).all())
        for _, document, _ in rows:
            if document.state == DESTROYED:
                raise ExportRefusedError(f"document {document.id} was destroyed after the export was requested")
            if requester is None or not requester.active or not readable(session, requester, document):
                raise ExportRefusedError(f"{export.requested_by} may no longer read document {document.id}")
        reserve = export.bates_begin is None
        pages = [page_count(session, version) for _, _, version in rows] if reserve else \
            [item.pages for item, _, _ in rows]
        begin = matter.next_bates if reserve else export.bates_begin  # provisional until reserved
        items = []
        for (item, document, version), n in zip(rows, pages, strict=True):
            items.append(Item(document_id=document.id, version=version, title=document.title,
                              document_type=types.get(document.document_type_id, ""),
                              custodian=creators.get(document.created_by, ""), created_at=document.created_at,
                              begin=item.bates_begin if not reserve else begin, pages=n))
            begin += max(n, 1)
        production = Production(export_id=export.id, volume=export.volume, matter_id=matter.id,
                                matter_name=matter.name, prefix=matter.bates_prefix,
                                requested_by=export.requested_by, requested_at=export.requested_at, items=items)
        return production, reserve


def _reserve(engine: Engine, export_id: str, owner: str, production: Production) -> Production:
    """Take the export's Bates range from the matter's counter (contiguous, never reused) and number its items."""
    with transaction(engine) as session:
        export = _leased(session, export_id, owner)
        matter = custody.lock(session, export.matter_id)
        begin, items, updates = matter.next_bates, [], []
        for position, item in enumerate(production.items):
            items.append(replace(item, begin=begin))
            updates.append({"export_id": export_id, "position": position, "bates_begin": begin, "pages": item.pages})
            begin += max(item.pages, 1)
        session.execute(update(MatterExportItem), updates)
        export.bates_begin, export.bates_end = matter.next_bates, begin - 1
        matter.next_bates = begin
    return replace(production, items=items)


def _renewer(engine: Engine, export_id: str, owner: str, stop: threading.Event | None) -> Any:
    last = [time.monotonic()]

    def renew() -> None:
        if stop is not None and stop.is_set():
            raise StopRequestedError(export_id)
        if time.monotonic() - last[0] < RENEW_EVERY:
            return
        with transaction(engine) as session:
            _leased(session, export_id, owner).lease_until = utcnow() + LEASE
        last[0] = time.monotonic()

    return renew


def _complete(engine: Engine, export_id: str, owner: str, production: Production, package: Any) -> None:
    with transaction(engine) as session:
        export = _leased(session, export_id, owner)
        matter = custody.lock(session, export.matter_id)
        export.state, export.completed_at, export.error = COMPLETED, utcnow(), None
        export.package_sha256, export.zip_sha256, export.zip_size = package.package_sha256, package.sha256, \
            package.size
        export.kek_id, export.wrapped_key = vault.wrap_key(get_runtime(), package.data_key, context=EXPORT_KEYS,
                                                           row_id=export.id)
        export.lease_owner, export.lease_until = None, None
        first, last = production.items[0], production.items[-1]
        custody.record(session, matter, actor=SYSTEM, action="export.completed", details={
            "export_id": export.id, "volume": export.volume, "requested_by": export.requested_by,
            "document_count": len(production.items), "files": package.files,
            "bates_begin": f"{production.prefix}{first.begin:06d}", "bates_end": f"{production.prefix}{last.end:06d}",
            "package_sha256": package.package_sha256, "zip_sha256": package.sha256, "zip_size": package.size})


def _release(engine: Engine, export_id: str, owner: str) -> None:
    """Put an export back in the queue (this process is stopping), without counting the attempt."""
    with transaction(engine) as session:
        export = _leased(session, export_id, owner)
        export.state, export.lease_owner, export.lease_until = QUEUED, None, None
        export.attempts = max(export.attempts - 1, 0)


def build_export(engine: Engine, export_id: str, owner: str, *, stop: threading.Event | None = None) -> None:
    """Build one claimed export to completion, or fail it with the reason."""
    try:
        production, reserve = _prepare(engine, export_id)
        if reserve:
            production = _reserve(engine, export_id, owner, production)
        with transaction(engine, readonly=True) as session:
            package = write_package(session, production, on_document=_renewer(engine, export_id, owner, stop))
        _complete(engine, export_id, owner, production, package)
    except LeaseLostError:
        log.warning("export %s was taken over by another runner; this one stops", export_id)
    except StopRequestedError:
        _release(engine, export_id, owner)
    except (ExportRefusedError, RepositoryError) as exc:
        reason = getattr(exc, "detail", None) or str(exc)
        log.warning("export %s failed: %s", export_id, reason)
        try:
            with transaction(engine) as session:
                _fail(session, _leased(session, export_id, owner), reason)
        except LeaseLostError:
            log.warning("export %s was taken over by another runner before its failure was recorded", export_id)


def expire_exports(engine: Engine, *, now: dt.datetime | None = None, limit: int = 100) -> int:
    """Delete the packages of completed exports older than POSTROOM_EXPORT_RETENTION_DAYS and shred their keys
    (recorded in each matter's chain of custody); returns how many expired."""
    days = get_settings().export_retention_days
    if not days:
        return 0
    cutoff = (now or utcnow()) - dt.timedelta(days=days)
    expiring = (MatterExport.state == COMPLETED, MatterExport.completed_at < cutoff)
    with transaction(engine, readonly=True) as session:  # the idle loop asks often: no write lock to find nothing
        if session.execute(select(MatterExport.id).where(*expiring).limit(1)).first() is None:
            return 0
    gone: list[str] = []
    with transaction(engine) as session:
        due = session.execute(select(MatterExport).where(*expiring).order_by(MatterExport.completed_at)
                              .limit(limit).with_for_update(skip_locked=True))
        for export in due.scalars().all():
            matter = custody.lock(session, export.matter_id)
            export.state, export.expired_at = EXPIRED, utcnow()
            export.kek_id, export.wrapped_key = None, None
            custody.record(session, matter, actor=SYSTEM, action="export.expired", details={
                "export_id": export.id, "zip_sha256": export.zip_sha256, "retention_days": days})
            gone.append(export.id)
    for export_id in gone:  # after the commit; a file a crash leaves here is unreadable: its key is shredded
        export_path(export_id).unlink(missing_ok=True)
    return len(gone)


def export_pending(engine: Engine, *, owner: str | None = None, stop: threading.Event | None = None) -> int:
    """Build the next export due, if any; returns 1 when there was one (0 when idle)."""
    owner = owner or new_owner()
    export_id = _claim(engine, owner)
    if export_id is None:
        return 0
    if export_id:
        build_export(engine, export_id, owner, stop=stop)
    return 1


def run_exporter(engine: Engine, stop: threading.Event, *, poll_seconds: float = 2.0) -> None:
    """Build exports until `stop` is set (an unexpected error leaves the export to be retried after its lease),
    and expire old packages when idle."""
    owner = new_owner()
    events.poll_until_stopped(lambda: export_pending(engine, owner=owner, stop=stop) or expire_exports(engine),
                              stop, poll_seconds=poll_seconds, what="export building")
