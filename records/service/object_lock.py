"""S3 Object Lock for declared records: the storage itself refuses to delete a record's blobs before its due date
(retention in the configured governance or compliance mode), or indefinitely (a legal hold) while the due date is
not known yet. Retention only ever extends: a due date that moves earlier keeps the later lock."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from records.models import RecordInfo
from records.service.common import SYSTEM, note
from repository.models import DocumentVersion
from repository.runtime import get_runtime

log = logging.getLogger(__name__)
RECORD_LOCKED = "record.locked"
_GONE = ("destroyed", "transferred")


def protect(session: Session, *, document_id: str) -> int:
    """Lock every version's blob of a declared record until its due date (a legal hold while it has none), note
    the date in RecordInfo.locked_until, and return how many blobs are protected; 0 when the document is not a
    declared record or the store cannot enforce retention. Talks to S3 inside the caller's transaction, which is
    safe: retention is idempotent and only extends."""
    info = session.get(RecordInfo, document_id)
    if info is None or info.declared_at is None or info.disposition in _GONE:
        return 0
    store = get_runtime().store
    keys = sorted(set(session.execute(
        select(DocumentVersion.blob_key).where(DocumentVersion.document_id == document_id)).scalars()))
    until = info.due_at
    protected = 0
    for key in keys:
        try:
            if store.retain(key, until):
                protected += 1
        except FileNotFoundError:  # nothing left in storage to protect; the record's integrity check reports it
            log.error("record %s: blob %s is missing from the store; it cannot be locked", document_id, key)
    if not protected:
        return 0
    before = info.locked_until
    if until is not None and (before is None or until > before):
        info.locked_until = until
    if until is None or info.locked_until != before:
        note(session, actor=SYSTEM, action=RECORD_LOCKED, object_type="document", object_id=document_id,
             details={"blobs": protected, "until": until.isoformat() if until else None,
                      "legal_hold": until is None, "previous": before.isoformat() if before else None},
             event=RECORD_LOCKED, payload={"document_id": document_id,
                                           "until": info.locked_until.isoformat() if info.locked_until else None})
    return protected
