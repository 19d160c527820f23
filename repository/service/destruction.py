"""Destroying a document for good (records disposition and erasure decide when): its data key is destroyed
(crypto-shredding: every copy of the content becomes unreadable), its descriptive metadata is cleared, and
its blobs are deleted after the commit. The rows stay as a stub so ids, hashes and the audit trail still
resolve; reads answer 404."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from repository import audit, events
from repository.errors import DocumentStateError, NotFoundError
from repository.models import DataKey, DavProperty, Document, DocumentType, DocumentVersion
from repository.runtime import get_runtime
from repository.service.checkout import void_locks
from repository.service.documents import DESTROYED
from repository.service.working_copy import CLEARED
from repository.types import utcnow

log = logging.getLogger(__name__)
DESTROYED_TITLE = "(destroyed)"


@dataclass(frozen=True)
class DestroyedDocument:
    """What a destruction removed: enough for a tombstone, and the blobs to delete once it has committed."""

    document_id: str
    document_type: str
    customer_id: str | None
    created_at: dt.datetime
    versions: list[dict[str, Any]]
    blob_keys: list[str]


def destroy_document(session: Session, *, document_id: str, actor: str, reason: str,
                     details: dict[str, Any] | None = None) -> DestroyedDocument:
    """Shred the document's data key, clear its title, metadata, file names and working copy, and mark it
    destroyed, audited with the version hashes. Call `delete_blobs` with the result after the commit."""
    document = session.execute(
        select(Document).where(Document.id == document_id).with_for_update()
    ).scalar_one_or_none()
    if document is None:
        raise NotFoundError(f"document {document_id} not found")
    if document.state == DESTROYED:
        raise DocumentStateError(f"document {document_id} was already destroyed")
    now = utcnow()
    versions = list(session.execute(
        select(DocumentVersion).where(DocumentVersion.document_id == document_id)
        .order_by(DocumentVersion.major, DocumentVersion.minor)).scalars())
    keys = sorted({v.blob_key for v in versions} | ({document.working_blob_key} - {None}))
    summary = [{"label": v.label, "sha256": v.sha256, "size": v.size, "media_type": v.media_type} for v in versions]
    doc_type = session.get(DocumentType, document.document_type_id).name
    session.execute(update(DataKey).where(DataKey.document_id == document_id)
                    .values(wrapped_key=None, destroyed_at=now))
    session.execute(update(DocumentVersion).where(DocumentVersion.document_id == document_id)
                    .values(filename="", comment=""))
    session.execute(update(Document).where(Document.id == document_id).values(
        state=DESTROYED, title=DESTROYED_TITLE, meta={}, checked_out_by=None, checked_out_at=None,
        lock_expires_at=None, revision=Document.revision + 1, updated_at=now, **CLEARED,
    ).execution_options(synchronize_session=False))
    session.expire(document)
    void_locks(session, document_id=document_id)
    session.execute(delete(DavProperty).where(DavProperty.resource == f"document:{document_id}"))
    audit.record(session, actor=actor, action="document.destroyed", object_type="document", object_id=document_id,
                 details={"reason": reason, "document_type": doc_type, "versions": summary, **(details or {})})
    events.emit(session, events.DOCUMENT_DESTROYED, {"document_id": document_id, "document_type": doc_type,
                                                     "customer_id": document.customer_id})
    return DestroyedDocument(document_id, doc_type, document.customer_id, document.created_at, summary, keys)


def delete_blobs(keys: list[str]) -> list[str]:
    """Delete destroyed content from the blob store (after the destruction committed); returns the keys that
    could not be deleted now (the key is shredded anyway, and `postroom gc` removes them later)."""
    store = get_runtime().store
    failed = []
    for key in keys:
        try:
            store.delete(key)
        except Exception as exc:  # storage refusing (object lock) or unreachable: gc retries
            log.warning("could not delete destroyed blob %s: %s", key, exc)
            failed.append(key)
    return failed
