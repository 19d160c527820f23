"""The append-only audit trail: every row stores the previous row's hash, so any edit breaks the chain."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from repository.models import AuditEntry, AuditHead
from repository.types import utcnow

GENESIS = "0" * 64
# Built once: an insert or update given its values as parameters skips per-call statement construction,
# which costs more than the database round trip on the ingest path.
_LOCK_HEAD = select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == 1).with_for_update()
_APPEND = insert(AuditEntry.__table__)  # Core: the ORM's bulk insert costs more than the rows
_MOVE_HEAD = update(AuditHead).where(AuditHead.id == 1).values(
    last_seq=bindparam("new_seq"), last_hash=bindparam("new_hash"))


_FIELDS = ("seq", "at", "actor", "action", "object_type", "object_id", "details", "prev_hash")


def chain_hash(row: dict[str, Any], fields: tuple[str, ...]) -> str:
    """The SHA-256 of a hash-chained row's fields in canonical JSON (times as UTC ISO strings); the audit trail
    and other chains (a matter's chain of custody) hash their rows with it."""
    body = [row[f].strftime("%Y-%m-%dT%H:%M:%S.%fZ") if isinstance(row[f], dt.datetime) else row[f] for f in fields]
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _digest(entry: AuditEntry | dict[str, Any]) -> str:
    row = entry if isinstance(entry, dict) else {f: getattr(entry, f) for f in _FIELDS}
    return chain_hash(row, _FIELDS)


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> str:
    """Append one row to the chain in the caller's transaction (the chain head is locked until commit);
    returns its hash. Plain inserts: the trail is append-only, no ORM identity is needed."""
    head = session.execute(_LOCK_HEAD).one()
    row = {
        "seq": head.last_seq + 1,
        "at": utcnow(),
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        # Round-trip through JSON now so the hash covers exactly what the database will give back.
        "details": json.loads(json.dumps(details or {}, default=str)),
        "prev_hash": head.last_hash,
    }
    row["hash"] = _digest(row)
    session.execute(_APPEND, row)
    session.execute(_MOVE_HEAD, {"new_seq": row["seq"], "new_hash": row["hash"]})
    return row["hash"]


def lock_head(session: Session) -> None:
    """Take the chain head's lock now, until the transaction ends (`record` takes it anyway). Work that decides on
    rows another transaction may be changing, then records its decision, takes it first: two such transactions
    then run one after the other, and the second sees what the first committed (legal holds and destructions)."""
    session.execute(_LOCK_HEAD).one()


def record_many(session: Session, entries: list[dict[str, Any]]) -> None:
    """Append many rows (each with actor, action, object_type, object_id, details) to the chain with one lock of
    its head and one insert: what `record` does for each, for bulk work such as a batch of letters."""
    if not entries:
        return
    head = session.execute(_LOCK_HEAD).one()
    seq, prev, now = head.last_seq, head.last_hash, utcnow()
    rows = []
    for entry in entries:
        seq += 1
        row = {"seq": seq, "at": now, "actor": entry["actor"], "action": entry["action"],
               "object_type": entry["object_type"], "object_id": entry.get("object_id"),
               "details": json.loads(json.dumps(entry.get("details") or {}, default=str)), "prev_hash": prev}
        row["hash"] = prev = _digest(row)
        rows.append(row)
    session.execute(_APPEND, rows)
    session.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": prev})


@dataclass(frozen=True)
class ChainReport:
    """The outcome of verifying the chain: rows checked and the first bad row, if any."""

    checked: int
    bad_seq: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when every row verified."""
        return self.bad_seq is None


def verify(session: Session, *, batch: int = 1000) -> ChainReport:
    """Recompute the whole chain in order, streaming, and name the first row that does not fit."""
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    rows = session.execute(select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=batch))
    for entry in rows.scalars():
        if entry.seq != expected_seq:
            return ChainReport(checked, expected_seq, f"row {expected_seq} is missing (next row is {entry.seq})")
        if entry.prev_hash != prev_hash:
            return ChainReport(checked, entry.seq, f"row {entry.seq} does not link to the row before it")
        if _digest(entry) != entry.hash:
            return ChainReport(checked, entry.seq, f"row {entry.seq} was altered: its hash does not match")
        prev_hash, expected_seq, checked = entry.hash, entry.seq + 1, checked + 1
    head = session.get(AuditHead, 1)
    if head is not None and (head.last_seq != expected_seq - 1 or head.last_hash != prev_hash):
        return ChainReport(checked, expected_seq, f"rows after {expected_seq - 1} up to {head.last_seq} are missing")
    return ChainReport(checked)
