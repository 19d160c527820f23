"""Legal holds: create, add documents (by id, by customer, or by a metadata query over the database), release,
and read. A document is held while any of its hold items is unreleased; only records managers (and admins) may
manage or see holds."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, and_, any_, bindparam, func, insert, literal, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from records import clock
from records import events as names
from records.errors import HoldStateError, RecordsNotFoundError
from records.models import HoldItem, LegalHold
from records.service import hold_query
from records.service.common import note, require_records_manager
from repository import audit
from repository.access import ADMIN, RECORDS_MANAGER, deny_read
from repository.errors import InvalidInputError
from repository.models import Customer, Document, DocumentVersion, User
from repository.service.documents import DESTROYED, decode_cursor, encode_cursor
from repository.types import UTCDateTime

ACTIVE, RELEASED = "active", "released"
STATES = (ACTIVE, RELEASED)
MAX_PER_CALL = 100_000
CHUNK = 5_000  # ids per IN (...) list: under SQLite's and PostgreSQL's bind-parameter limits
SHOWN = 20  # ids named in an error's detail (the problem lists them all)


@dataclass(frozen=True)
class HoldAddition:
    """What one add_items call covered: documents added, those this hold already had, and unknown ids."""

    hold_id: str
    source: str
    added: list[str]
    already_held_here: list[str]
    not_found: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class HoldPage:
    """One page of holds and the cursor for the next, if any."""

    items: list[LegalHold]
    next_cursor: str | None


@dataclass(frozen=True)
class ItemPage:
    """One page of a hold's items (by document id) and the id to continue after, if any."""

    items: list[HoldItem]
    next_after: str | None


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def _member(session: Session, column: Any, ids: list[str]) -> ColumnElement[bool]:
    """column IN ids; on PostgreSQL one array parameter (= ANY), which the driver sends far faster than
    thousands of separate parameters."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(ids, ARRAY(String)))
    return column.in_(ids)


def _may_manage(actor: User) -> bool:
    return ADMIN in actor.roles or RECORDS_MANAGER in actor.roles


def _hold(session: Session, actor: User, hold_id: str, *, lock: bool = False) -> LegalHold:
    """The hold, for records managers; anyone else is told it does not exist (and the denial is audited)."""
    if not _may_manage(actor):
        raise deny_read(actor, "legal_hold", hold_id)
    hold = session.get(LegalHold, hold_id, with_for_update=lock)
    if hold is None:
        raise RecordsNotFoundError(f"legal hold {hold_id} not found")
    return hold


def _required(value: str | None, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{name} is required", field=name)
    if len(value.strip()) > limit:
        raise InvalidInputError(f"{name} is longer than {limit} characters", field=name)
    return value.strip()


def create_hold(session: Session, *, actor: User, name: str, reason: str, matter_ref: str | None = None) -> LegalHold:
    """Open a legal hold (records managers); it holds nothing until documents are added."""
    require_records_manager(actor)
    name, reason = _required(name, "name", 200), _required(reason, "reason", 10_000)
    matter_ref = _required(matter_ref, "matter_ref", 200) if matter_ref is not None and matter_ref.strip() else None
    hold = LegalHold(name=name, reason=reason, matter_ref=matter_ref, state=ACTIVE, created_by=actor.username,
                     created_at=clock.now())
    session.add(hold)
    session.flush()
    note(session, actor=actor.username, action=names.HOLD_CREATED, object_type="legal_hold", object_id=hold.id,
         details={"name": name, "reason": reason, "matter_ref": matter_ref}, event=names.HOLD_CREATED,
         payload={"id": hold.id, "name": name, "matter_ref": matter_ref})
    return hold


def _by_ids(session: Session, document_ids: Any) -> list[str]:
    """The ids given, each once, in order; 422 listing every id that does not exist or was destroyed."""
    if not isinstance(document_ids, list) or not document_ids:
        raise InvalidInputError("document_ids must be a non-empty list of document ids", field="document_ids")
    if not all(isinstance(i, str) and i for i in document_ids):
        raise InvalidInputError("document_ids must be strings", field="document_ids")
    ids = list(dict.fromkeys(document_ids))
    if len(ids) > MAX_PER_CALL:
        raise InvalidInputError(f"{len(ids)} documents in one call; at most {MAX_PER_CALL}", field="document_ids")
    present: set[str] = set()
    for chunk in _chunks(ids):
        present.update(session.execute(select(Document.id).where(
            _member(session, Document.id, chunk), Document.state != DESTROYED)).scalars())
    missing = [i for i in ids if i not in present]
    if missing:
        shown = ", ".join(missing[:SHOWN]) + (f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else "")
        raise InvalidInputError(f"{len(missing)} of the documents do not exist or were destroyed: {shown}; nothing "
                                "was added", field="document_ids", not_found=missing)
    return ids


def _selected(session: Session, where: list[Any], what: str) -> list[str]:
    """Ids of the non-destroyed documents matching `where`, oldest first; 422 beyond the per-call cap."""
    where = [*where, Document.state != DESTROYED]
    count = session.execute(select(func.count()).select_from(Document).where(*where)).scalar_one()
    if count > MAX_PER_CALL:
        raise InvalidInputError(f"{what} covers {count} documents; at most {MAX_PER_CALL} can be added in one call: "
                                "narrow it (for example by created_from/created_to) and add the rest in more calls",
                                field=what.split()[0], matched=count)
    return list(session.execute(select(Document.id).where(*where).order_by(Document.created_at, Document.id))
                .scalars())


def _labels(session: Session, ids: list[str]) -> dict[str, list[str]]:
    """Each document's version labels, oldest first."""
    labels: dict[str, list[str]] = {i: [] for i in ids}
    for chunk in _chunks(ids):
        rows = session.execute(select(DocumentVersion.document_id, DocumentVersion.major, DocumentVersion.minor)
                               .where(_member(session, DocumentVersion.document_id, chunk))
                               .order_by(DocumentVersion.major, DocumentVersion.minor))
        for document_id, major, minor in rows:
            labels[document_id].append(f"{major}.{minor}")
    return labels


# PostgreSQL: every item in one statement from one JSON parameter (executemany sends a row at a time, and the
# driver dumps one JSON string far faster than thousands of parameters).
_INSERT_PG = text(
    "INSERT INTO records_hold_items (hold_id, document_id, source, added_by, added_at, versions, released_at) "
    "SELECT :hold_id, e.item ->> 0, :source, :added_by, :added_at, e.item -> 1, NULL "
    "FROM jsonb_array_elements(CAST(:items AS JSONB)) AS e(item)"
).bindparams(bindparam("added_at", type_=UTCDateTime()))


def _insert_items(session: Session, *, hold_id: str, source: str, added_by: str, added_at: dt.datetime,
                  labels: dict[str, list[str]]) -> None:
    """Insert the hold items in bulk (never one ORM object per row)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_INSERT_PG, {"hold_id": hold_id, "source": source, "added_by": added_by,
                                     "added_at": added_at, "items": json.dumps(list(labels.items()))})
        return
    session.execute(insert(HoldItem), [
        {"hold_id": hold_id, "document_id": i, "source": source, "added_by": added_by, "added_at": added_at,
         "versions": v, "released_at": None} for i, v in labels.items()])


def _sources(session: Session, document_ids: Any, customer_id: Any, query: Any) -> tuple[str, list[str], dict]:
    """(source, ids, criteria for the audit) from exactly one of the three ways to choose documents."""
    given = [name for name, value in (("document_ids", document_ids), ("customer_id", customer_id), ("query", query))
             if value is not None]
    if len(given) != 1:
        raise InvalidInputError("give exactly one of document_ids, customer_id or query"
                                + (f" (not {' and '.join(given)})" if given else ""), field="body")
    if document_ids is not None:
        ids = _by_ids(session, document_ids)
        return "document", ids, {"document_ids": len(ids)}
    if customer_id is not None:
        if not isinstance(customer_id, str) or session.get(Customer, customer_id) is None:
            raise InvalidInputError(f"there is no customer {customer_id}", field="customer_id")
        return "customer", _selected(session, [Document.customer_id == customer_id], "customer_id"), \
            {"customer_id": customer_id}
    return "query", _selected(session, hold_query.conditions(session, query), "query"), {"query": query}


def add_items(session: Session, *, actor: User, hold_id: str, document_ids: list[str] | None = None,
              customer_id: str | None = None, query: dict[str, Any] | None = None) -> HoldAddition:
    """Put documents under the hold: by id, every non-destroyed document of a customer, or those a metadata query
    matches in the database. Trashed documents can be held. All or nothing: unknown ids refuse the call."""
    hold = _hold(session, actor, hold_id, lock=True)
    if hold.state != ACTIVE:
        raise HoldStateError(f"legal hold {hold_id} was released on {hold.released_at.isoformat()}; open a new hold "
                             "to hold more documents", hold_id=hold_id)
    # Before reading the documents: a destruction deciding about one of them meanwhile commits first (and is seen
    # as destroyed here), or waits for this hold and sees it.
    audit.lock_head(session)
    source, ids, criteria = _sources(session, document_ids, customer_id, query)
    here: set[str] = set()
    for chunk in _chunks(ids):
        here.update(session.execute(select(HoldItem.document_id).where(
            HoldItem.hold_id == hold_id, _member(session, HoldItem.document_id, chunk))).scalars())
    added = [i for i in ids if i not in here]
    if added:
        labels, now = _labels(session, added), clock.now()
        _insert_items(session, hold_id=hold_id, source=source, added_by=actor.username, added_at=now,
                      labels={i: labels[i] for i in added})
    already = [i for i in ids if i in here]
    note(session, actor=actor.username, action=names.HOLD_ITEMS_ADDED, object_type="legal_hold", object_id=hold_id,
         details={"source": source, **criteria, "added": len(added), "already_held_here": len(already)},
         event=names.HOLD_ITEMS_ADDED, payload={"id": hold_id, "source": source, "added": len(added)})
    return HoldAddition(hold_id=hold_id, source=source, added=added, already_held_here=already)


def release_hold(session: Session, *, actor: User, hold_id: str, reason: str) -> LegalHold:
    """Release a hold and every item of it (audited, with the reason). Its documents are free once no other hold
    covers them."""
    hold = _hold(session, actor, hold_id, lock=True)
    reason = _required(reason, "reason", 10_000)
    if hold.state != ACTIVE:
        raise HoldStateError(f"legal hold {hold_id} was already released on {hold.released_at.isoformat()} by "
                             f"{hold.released_by}", hold_id=hold_id)
    now = clock.now()
    hold.state, hold.released_by, hold.released_at, hold.release_reason = RELEASED, actor.username, now, reason
    items = session.execute(update(HoldItem).where(HoldItem.hold_id == hold_id, HoldItem.released_at.is_(None))
                            .values(released_at=now).execution_options(synchronize_session=False)).rowcount
    note(session, actor=actor.username, action=names.HOLD_RELEASED, object_type="legal_hold", object_id=hold_id,
         details={"reason": reason, "items": items, "name": hold.name, "matter_ref": hold.matter_ref},
         event=names.HOLD_RELEASED, payload={"id": hold_id, "items": items})
    return hold


def get_hold(session: Session, *, actor: User, hold_id: str) -> LegalHold:
    """One hold (records managers; 404 for anyone else)."""
    return _hold(session, actor, hold_id)


def hold_counts(session: Session, *, hold_ids: list[str]) -> dict[str, tuple[int, int]]:
    """(items, active items) of each hold."""
    counts = {i: (0, 0) for i in hold_ids}
    for chunk in _chunks(hold_ids):
        rows = session.execute(select(HoldItem.hold_id, func.count(),
                                      func.count().filter(HoldItem.released_at.is_(None)))
                               .where(HoldItem.hold_id.in_(chunk)).group_by(HoldItem.hold_id))
        counts.update({hold_id: (total, active) for hold_id, total, active in rows})
    return counts


def list_holds(session: Session, *, actor: User, state: str | None = None, matter_ref: str | None = None,
               cursor: str | None = None, limit: int = 50) -> HoldPage:
    """Holds newest first, one page at a time, optionally only active or released ones, or one matter's."""
    require_records_manager(actor)
    if state is not None and state not in STATES:
        raise InvalidInputError(f"state must be one of {', '.join(STATES)}", field="state")
    limit = min(max(limit, 1), 200)
    stmt = select(LegalHold)
    if state is not None:
        stmt = stmt.where(LegalHold.state == state)
    if matter_ref is not None:
        stmt = stmt.where(LegalHold.matter_ref == matter_ref)
    if cursor:
        at, last_id = decode_cursor(cursor)
        stmt = stmt.where(or_(LegalHold.created_at < at, and_(LegalHold.created_at == at, LegalHold.id < last_id)))
    rows = list(session.execute(stmt.order_by(LegalHold.created_at.desc(), LegalHold.id.desc()).limit(limit + 1))
                .scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return HoldPage(rows, encode_cursor(rows[-1]) if more else None)  # type: ignore[arg-type]


def hold_items(session: Session, *, actor: User, hold_id: str, after: str | None = None,
               limit: int = 100) -> ItemPage:
    """A hold's items by document id, `limit` at a time after the document id `after`."""
    _hold(session, actor, hold_id)
    limit = min(max(limit, 1), 1000)
    stmt = select(HoldItem).where(HoldItem.hold_id == hold_id)
    if after:
        stmt = stmt.where(HoldItem.document_id > after)
    rows = list(session.execute(stmt.order_by(HoldItem.document_id).limit(limit + 1)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return ItemPage(rows, rows[-1].document_id if more else None)
