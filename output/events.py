"""Event names of output: a letter archived and queued, and what happened to it on each channel; and its
start-up registration (the repository guard that keeps a letter's document as sent, and its outbox subscriber)."""

from __future__ import annotations

LETTER_CREATED = "letter.created"
DISPATCH_SENT = "letter.sent"
DISPATCH_DELIVERED = "letter.delivered"
DISPATCH_FAILED = "letter.failed"
DISPATCH_BOUNCED = "letter.bounced"
DISPATCH_SOFT_BOUNCED = "letter.soft_bounced"  # the relay retries by itself; noted for the help desk
DISPATCH_SUPPRESSED = "letter.suppressed"
DISPATCH_RETRY = "letter.retry_scheduled"
DISPATCH_FALLBACK = "letter.fallback_queued"
LETTER_OPENED = "letter.opened"
LETTER_CLICKED = "letter.clicked"
DISPATCH_DAMAGED = "letter.damaged"  # the print house's inserter damaged the piece: it is printed again
BATCH_CREATED = "batch.created"
BATCH_COMPLETED = "batch.completed"
BATCH_CANCELLED = "batch.cancelled"
BATCH_FAILED = "batch.failed"
MESSAGE_TEMPLATE_CREATED = "message_template.created"
MESSAGE_TEMPLATE_UPDATED = "message_template.updated"
MESSAGE_TEMPLATE_DELETED = "message_template.deleted"
PRINT_RUN_CREATED = "print_run.created"
PRINT_RESULTS_IMPORTED = "print_run.results_imported"

BY_KIND = {"sent": DISPATCH_SENT, "delivered": DISPATCH_DELIVERED, "failed": DISPATCH_FAILED,
           "bounced": DISPATCH_BOUNCED, "soft_bounced": DISPATCH_SOFT_BOUNCED, "suppressed": DISPATCH_SUPPRESSED,
           "opened": LETTER_OPENED, "clicked": LETTER_CLICKED, "damaged": DISPATCH_DAMAGED}


def register() -> None:
    """Guard letters' documents in the repository, settle letters whose document is destroyed, and stop queued
    marketing when its consent is withdrawn."""
    from output.service import archived, consent  # here, not at the top: the service imports these names
    from repository import events, guards

    guards.register("output", archived.guard)
    events.subscribe(events.DOCUMENT_DESTROYED, "output.letter_destroyed", archived.on_document_destroyed)
    events.subscribe(events.CUSTOMER_CONSENT_RECORDED, "output.consent_withdrawn", consent.on_consent_recorded)
