"""Event names of records management, and its start-up registration: the repository's change guard and the
outbox subscribers that classify new documents and start retention clocks."""

from __future__ import annotations

CLASS_CREATED = "records.class_created"
CLASS_UPDATED = "records.class_updated"
TYPES_MAPPED = "records.types_mapped"
RECORD_CLASSIFIED = "record.classified"
RECORD_RECLASSIFIED = "record.reclassified"
RECORD_DECLARED = "record.declared"
RECORD_CLOCK_STARTED = "record.clock_started"
BUSINESS_EVENT_RECORDED = "records.business_event"
HOLD_CREATED = "hold.created"
HOLD_ITEMS_ADDED = "hold.items_added"
HOLD_RELEASED = "hold.released"
DISPOSITION_PROPOSED = "disposition.proposed"
DISPOSITION_ITEM_EXCLUDED = "disposition.item_excluded"
DISPOSITION_APPROVED = "disposition.approved"
DISPOSITION_REJECTED = "disposition.rejected"
DISPOSITION_COMPLETED = "disposition.completed"
RECORD_DESTROYED = "record.destroyed"
RECORD_TRANSFERRED = "record.transferred"
RECORD_REVIEW_DUE = "record.review_due"
RECORD_REVIEWED = "record.reviewed"
ERASURE_REQUESTED = "erasure.requested"

LETTER_SENT = "letter.sent"  # output's event (records may not import output; the name is the contract)


def register() -> None:
    """Guard record and hold changes in the repository, and subscribe to the events that drive retention."""
    from records.service import classification, declaration
    from repository import events, guards

    guards.register("records", declaration.guard)
    events.subscribe(events.DOCUMENT_CREATED, "records.classify", classification.on_document_created)
    events.subscribe(LETTER_SENT, "records.letter_sent", classification.on_letter_sent)
