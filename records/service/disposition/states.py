"""The states of a disposition batch and of a document's disposition (RecordInfo.disposition)."""

from __future__ import annotations

# Batch: "proposed" → "approved" → "executing" → "completed"; or "rejected".
PROPOSED, APPROVED, EXECUTING, COMPLETED, REJECTED = "proposed", "approved", "executing", "completed", "rejected"
BATCH_STATES = (PROPOSED, APPROVED, EXECUTING, COMPLETED, REJECTED)

# A document's disposition.
ACTIVE, PENDING, REVIEW = "active", "pending", "review"

# An executed item's outcome.
DESTROYED, TRANSFERRED, REVIEWED, SKIPPED = "destroyed", "transferred", "review", "skipped"
