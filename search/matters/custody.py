"""A matter's chain of custody: events appended under a lock of the matter row, each hashed over its own fields
and the previous event's hash (as repository/audit.py chains the audit trail), so an edited, removed or
inserted event is found by `verify_custody`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from repository import audit, events
from repository.types import utcnow
from search.matters.models import GENESIS, Matter, MatterEvent

_FIELDS = ("matter_id", "seq", "at", "actor", "action", "details", "prev_hash")


def _digest(row: dict[str, Any]) -> str:
    return audit.chain_hash(row, _FIELDS)


def lock(session: Session, matter_id: str) -> Matter | None:
    """The matter row, locked until the transaction ends (appends to its chain are serialised by it)."""
    return session.get(Matter, matter_id, with_for_update=True, populate_existing=True)


def record(session: Session, matter: Matter, *, actor: str, action: str, details: dict[str, Any]) -> MatterEvent:
    """Audit an action on a locked matter (object_type "matter"), append it to the matter's chain and emit
    `matter.<action>` in the outbox."""
    # Round-trip through JSON so the hash covers exactly what the database gives back.
    details = json.loads(json.dumps(details, default=str))
    audit.record(session, actor=actor, action=f"matter.{action}", object_type="matter", object_id=matter.id,
                 details=details)
    row = {"matter_id": matter.id, "seq": matter.custody_seq + 1, "at": utcnow(), "actor": actor,
           "action": action, "details": details, "prev_hash": matter.custody_hash}
    row["hash"] = _digest(row)
    session.execute(insert(MatterEvent), row)
    matter.custody_seq, matter.custody_hash = row["seq"], row["hash"]
    events.emit(session, f"matter.{action}", {"matter_id": matter.id, "seq": row["seq"]})
    return MatterEvent(**row)


@dataclass(frozen=True)
class CustodyReport(audit.ChainReport):
    """The outcome of verifying a matter's chain: events checked and the first bad one, if any."""

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON."""
        return {"ok": self.ok, "checked": self.checked, "bad_seq": self.bad_seq, "reason": self.reason}


def verify_custody(session: Session, matter: Matter) -> CustodyReport:
    """Recompute the matter's chain in order and name the first event that does not fit."""
    prev, expected, checked = GENESIS, 1, 0
    rows = session.execute(select(MatterEvent).where(MatterEvent.matter_id == matter.id)
                           .order_by(MatterEvent.seq).execution_options(yield_per=500)).scalars()
    for event in rows:
        if event.seq != expected:
            return CustodyReport(checked, expected, f"event {expected} is missing (next event is {event.seq})")
        if event.prev_hash != prev:
            return CustodyReport(checked, event.seq, f"event {event.seq} does not link to the event before it")
        fields = {f: getattr(event, f) for f in _FIELDS}
        if _digest(fields) != event.hash:
            return CustodyReport(checked, event.seq, f"event {event.seq} ({event.action}) was altered: its hash "
                                 "does not match")
        prev, expected, checked = event.hash, event.seq + 1, checked + 1
    if matter.custody_seq != expected - 1 or matter.custody_hash != prev:
        return CustodyReport(checked, expected, f"events after {expected - 1} up to {matter.custody_seq} are missing")
    return CustodyReport(checked)
