"""Production exports, the request side: which documents (a saved search evaluated against the database, or
ids), only those the requester may read (restricted ones for records managers alone), the exact current version
of each, fixed when requested. The package itself is built in the background (jobs.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from sqlalchemy import and_, insert, select
from sqlalchemy.orm import Session

from repository import vault
from repository.access import deny_write
from repository.config import get_settings
from repository.errors import InvalidInputError, NotFoundError
from repository.models import Document, DocumentVersion, User
from repository.runtime import get_runtime
from repository.service.documents import DESTROYED, TRASHED, readable
from repository.types import utcnow
from search.matters import custody
from search.matters.errors import ExportExpiredError, ExportNotReadyError
from search.matters.models import MatterExport, MatterExportItem
from search.matters.package import export_path, read_package, read_plain
from search.matters.preserve import MAX_DOCUMENTS, select_documents
from search.matters.service import get_search, load, may_manage

QUEUED, RUNNING, COMPLETED, FAILED, EXPIRED = "queued", "running", "completed", "failed", "expired"
EXPORT_KEYS = "matter-export"  # the key ring context of a package's data key (see repository.vault)
CHUNK = 5000
SHOWN = 20


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def _documents(session: Session, ids: list[str]) -> dict[str, tuple[Document, str]]:
    """Each existing document with its current version's id."""
    found: dict[str, tuple[Document, str]] = {}
    for chunk in _chunks(ids):
        rows = session.execute(select(Document, DocumentVersion.id).join(DocumentVersion, and_(
            DocumentVersion.document_id == Document.id, DocumentVersion.major == Document.current_major,
            DocumentVersion.minor == Document.current_minor)).where(Document.id.in_(chunk))).all()
        found.update({doc.id: (doc, version_id) for doc, version_id in rows})
    return found


def _by_ids(document_ids: Any) -> list[str]:
    if not isinstance(document_ids, list) or not document_ids:
        raise InvalidInputError("document_ids must be a non-empty list of document ids", field="document_ids")
    if not all(isinstance(i, str) and i for i in document_ids):
        raise InvalidInputError("document_ids must be strings", field="document_ids")
    ids = list(dict.fromkeys(document_ids))
    if len(ids) > MAX_DOCUMENTS:
        raise InvalidInputError(f"{len(ids)} documents in one export; at most {MAX_DOCUMENTS}", field="document_ids")
    return ids


def request_export(session: Session, *, actor: User, matter_id: str, search_id: str | None = None,
                   document_ids: list[str] | None = None) -> MatterExport:
    """Queue an export of a saved search's documents (those the actor may read; the others are counted, not
    named) or of the given ids (all or nothing: an id that does not exist or that the actor may not read refuses
    the call, 422). The requested versions are fixed now; audited and in the chain of custody."""
    if (search_id is None) == (document_ids is None):
        raise InvalidInputError("give exactly one of search_id or document_ids", field="body")
    matter = load(session, actor=actor, matter_id=matter_id, manage=True, lock=True)
    if search_id is not None:
        saved = get_search(session, matter, search_id)
        ids = select_documents(session, saved).document_ids
        found = _documents(session, ids)
        chosen = [i for i in ids if i in found and readable(session, actor, found[i][0])]
        unreadable = len(ids) - len(chosen)
        if not chosen:
            raise InvalidInputError(f"the saved search {saved.name!r} matches no documents you may read; nothing "
                                    "to export", field="search_id")
    else:
        chosen, unreadable = _by_ids(document_ids), 0
        found = _documents(session, chosen)
        refused = [i for i in chosen if i not in found or found[i][0].state == DESTROYED
                   or not readable(session, actor, found[i][0])]
        if refused:
            shown = ", ".join(refused[:SHOWN]) + (f" and {len(refused) - SHOWN} more" if len(refused) > SHOWN else "")
            raise InvalidInputError(f"{len(refused)} of the documents do not exist or you may not read them: {shown}; "
                                    "nothing was exported", field="document_ids", not_found=refused)
    export = MatterExport(matter_id=matter.id, state=QUEUED, volume=f"VOL{matter.next_volume:04d}",
                          source="search" if search_id else "documents", search_id=search_id,
                          requested_by=actor.username, requested_at=utcnow(), document_count=len(chosen),
                          excluded_unreadable=unreadable, attempts=0)
    matter.next_volume += 1
    session.add(export)
    session.flush()
    session.execute(insert(MatterExportItem), [
        {"export_id": export.id, "position": n, "document_id": i, "version_id": found[i][1], "bates_begin": None,
         "pages": None} for n, i in enumerate(chosen)])
    labels = {i: found[i][0].version_label for i in chosen}
    custody.record(session, matter, actor=actor.username, action="export.requested", details={
        "export_id": export.id, "volume": export.volume, "source": export.source, "search_id": search_id,
        "document_count": len(chosen), "excluded_unreadable": unreadable,
        "documents": [{"document_id": i, "version": labels[i], "in_trash": found[i][0].state == TRASHED}
                      for i in chosen]})
    return export


def get_export(session: Session, *, actor: User, matter_id: str, export_id: str) -> MatterExport:
    """An export of the matter (those who may see the matter)."""
    matter = load(session, actor=actor, matter_id=matter_id)
    export = session.get(MatterExport, export_id)
    if export is None or export.matter_id != matter.id:
        raise NotFoundError(f"export {export_id} not found in matter {matter_id}")
    return export


def export_items(session: Session, export: MatterExport) -> list[tuple[MatterExportItem, str]]:
    """The export's documents in production order, with each one's version label."""
    rows = session.execute(select(MatterExportItem, DocumentVersion.major, DocumentVersion.minor)
                           .join(DocumentVersion, DocumentVersion.id == MatterExportItem.version_id)
                           .where(MatterExportItem.export_id == export.id).order_by(MatterExportItem.position))
    return [(item, f"{major}.{minor}") for item, major, minor in rows]


def expires_at(export: MatterExport) -> dt.datetime | None:
    """When a completed export's package will be deleted (POSTROOM_EXPORT_RETENTION_DAYS), or None."""
    days = get_settings().export_retention_days
    if export.state != COMPLETED or export.completed_at is None or not days:
        return None
    return export.completed_at + dt.timedelta(days=days)


def open_download(session: Session, *, actor: User, matter_id: str,
                  export_id: str) -> tuple[MatterExport, Iterator[bytes]]:
    """The completed ZIP of an export for a matter manager (auditors read the status, not the documents), as a
    stream decrypted from the package file; the download is audited and in the chain of custody. 409 until the
    export has completed."""
    matter = load(session, actor=actor, matter_id=matter_id, lock=True)
    if not may_manage(actor):
        raise deny_write(actor, "matter", matter_id, "download an export (records managers and admins only)")
    export = get_export(session, actor=actor, matter_id=matter_id, export_id=export_id)
    path = export_path(export.id)
    if export.state == EXPIRED:
        raise ExportExpiredError(f"export {export_id} expired on {export.expired_at.isoformat()}: its package was "
                                 "deleted when its retention ended; request a new export", state=export.state)
    if export.state != COMPLETED:
        raise ExportNotReadyError(f"export {export_id} is {export.state}; download it once it has completed",
                                  state=export.state)
    if not path.is_file():
        raise ExportNotReadyError(f"the package of export {export_id} is no longer on disk", state=export.state)
    if export.wrapped_key is None:  # written before packages were encrypted (migration 0013)
        stream = read_plain(path)
    else:
        data_key = vault.unwrap_key(get_runtime(), context=EXPORT_KEYS, row_id=export.id, kek_id=export.kek_id,
                                    wrapped=export.wrapped_key)
        stream = read_package(path, data_key, export.zip_size)
    custody.record(session, matter, actor=actor.username, action="export.downloaded",
                   details={"export_id": export.id, "zip_sha256": export.zip_sha256})
    return export, stream
