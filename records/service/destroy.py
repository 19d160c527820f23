"""Destroying a document under records control: refuse while held, crypto-shred through the repository, keep a
tombstone. Disposition batches and erasure requests both come through here."""

from __future__ import annotations

from sqlalchemy.orm import Session

from records import events as names
from records.errors import LegalHoldActiveError
from records.models import RecordInfo, RetentionClass, Tombstone
from records.service.common import active_holds, note
from repository.service.destruction import DestroyedDocument, destroy_document

TRANSFERRED, DESTROYED = "transferred", "destroyed"


def rule_snapshot(cls: RetentionClass | None) -> dict:
    """The rule a document was disposed under, as kept on its tombstone and certificate."""
    if cls is None:
        return {}
    return {"class": cls.code, "trigger": cls.trigger, "event_type": cls.event_type, "period_value": cls.period_value,
            "period_unit": cls.period_unit, "cutoff": cls.cutoff, "action": cls.action,
            "rule_revision": cls.rule_revision, "legal_basis": cls.legal_basis}


def destroy_with_tombstone(session: Session, *, document_id: str, actor: str, approved_by: str, action: str,
                           batch_id: str | None = None, erasure_id: str | None = None,
                           transfer_package: str | None = None) -> DestroyedDocument:
    """Destroy one document (action "destroy", "transfer" or "erasure") and leave its tombstone; refuses with
    LegalHoldActiveError while any hold covers it. Delete the returned blob keys after the commit."""
    holds = active_holds(session, document_id)
    if holds:
        raise LegalHoldActiveError(f"document {document_id} is under legal hold ({', '.join(holds)}); it cannot be "
                                   "destroyed until every hold on it is released", holds=holds)
    info = session.get(RecordInfo, document_id)
    cls = session.get(RetentionClass, info.class_id) if info is not None and info.class_id else None
    declared_at = info.declared_at if info is not None else None
    due_at = info.due_at if info is not None else None
    details = {"action": action, "approved_by": approved_by, "batch_id": batch_id, "erasure_id": erasure_id,
               "class": cls.code if cls else None}
    gone = destroy_document(session, document_id=document_id, actor=actor, reason=action,
                            details={k: v for k, v in details.items() if v is not None})
    session.add(Tombstone(document_id=document_id, document_type=gone.document_type,
                          class_code=cls.code if cls else None, rule=rule_snapshot(cls), created_at=gone.created_at,
                          declared_at=declared_at, due_at=due_at, action=action, versions=gone.versions,
                          approved_by=approved_by, batch_id=batch_id, erasure_id=erasure_id,
                          transfer_package=transfer_package))
    if info is not None:
        info.disposition = TRANSFERRED if action == "transfer" else DESTROYED
    event = names.RECORD_TRANSFERRED if action == "transfer" else names.RECORD_DESTROYED
    note(session, actor=actor, action=event, object_type="document", object_id=document_id,
         details={k: v for k, v in details.items() if v is not None}, event=event,
         payload={"document_id": document_id, "customer_id": gone.customer_id, "action": action,
                  "batch_id": batch_id, "erasure_id": erasure_id})
    return gone
