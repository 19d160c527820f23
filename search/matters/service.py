"""Matters and their saved searches: create, read, list, update, close; save a search and run it. Records managers
and admins manage matters, auditors read them, anyone else is told they do not exist. Every action is audited and
appended to the matter's chain of custody; a closed matter refuses every change (409)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from records.models import LegalHold
from records.service import holds
from records.service.holds import ACTIVE as HOLD_ACTIVE
from repository.access import ADMIN, RECORDS_MANAGER, deny_read, deny_write
from repository.errors import InvalidInputError, NotFoundError
from repository.models import Customer, DocumentType, User
from repository.service.documents import decode_cursor, encode_cursor
from repository.types import utcnow
from search import service as search_service
from search.matters import custody
from search.matters.errors import MatterStateError
from search.matters.models import Matter, MatterEvent, MatterExport, MatterHold, MatterSearch
from search.metadata import check_key
from search.query import parse

OPEN, CLOSED = "open", "closed"
STATUSES = (OPEN, CLOSED)
AUDITOR = "auditor"
PREFIX = re.compile(r"^[A-Z0-9]{1,12}$")
MAX_LIST = 200  # custodians or customers of one matter
MAX_META = 20


def may_manage(actor: User) -> bool:
    """Records managers and admins manage matters."""
    return ADMIN in actor.roles or RECORDS_MANAGER in actor.roles


def may_view(actor: User) -> bool:
    """Managers and auditors (read-only) see matters."""
    return may_manage(actor) or AUDITOR in actor.roles


def _require_view(actor: User, matter_id: str | None = None) -> None:
    if not may_view(actor):
        raise deny_read(actor, "matter", matter_id or "collection")


def load(session: Session, *, actor: User, matter_id: str, manage: bool = False, lock: bool = False) -> Matter:
    """The matter for someone who may see it (404 otherwise); `manage` also needs a manager (403) and an open
    matter (409); `lock` locks the row, which serialises appends to its chain of custody."""
    _require_view(actor, matter_id)
    matter = custody.lock(session, matter_id) if lock else session.get(Matter, matter_id)
    if matter is None:
        raise NotFoundError(f"matter {matter_id} not found")
    if manage:
        if not may_manage(actor):
            raise deny_write(actor, "matter", matter_id, "change a matter (records managers and admins only)")
        if matter.status == CLOSED:
            raise MatterStateError(f"matter {matter_id} was closed on {matter.closed_at.isoformat()} by "
                                   f"{matter.closed_by}; a closed matter cannot be changed", matter_id=matter_id)
    return matter


def _text(value: Any, name: str, limit: int, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidInputError(f"{name} is required", field=name)
    if len(value) > limit:
        raise InvalidInputError(f"{name} is longer than {limit} characters", field=name)
    return value.strip()


def _prefix(value: Any, name: str) -> str:
    if value is None:
        letters = re.sub(r"[^A-Z0-9]", "", name.upper())[:8]
        return letters or "MATTER"
    if not isinstance(value, str) or not PREFIX.match(value):
        raise InvalidInputError("bates_prefix must be 1-12 upper-case letters or digits, like SMITHVBANK",
                                field="bates_prefix")
    return value


def _ids(session: Session, values: Any, name: str, model: type, column: Any) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise InvalidInputError(f"{name} must be a list of strings", field=name)
    if len(values) > MAX_LIST:
        raise InvalidInputError(f"at most {MAX_LIST} {name}", field=name)
    wanted = list(dict.fromkeys(values))
    known = set(session.execute(select(column).where(column.in_(wanted))).scalars()) if wanted else set()
    unknown = [v for v in wanted if v not in known]
    if unknown:
        raise InvalidInputError(f"{name}: unknown {model.__name__.lower()}(s) {', '.join(unknown)}", field=name,
                                unknown=unknown)
    return wanted


def _range(date_from: dt.date | None, date_to: dt.date | None) -> None:
    if date_from is not None and date_to is not None and date_to < date_from:
        raise InvalidInputError("date_to is before date_from", field="date_to")


def _summary(matter: Matter) -> dict[str, Any]:
    return {"name": matter.name, "description": matter.description, "custodians": matter.custodians,
            "customers": matter.customers, "date_from": matter.date_from, "date_to": matter.date_to,
            "bates_prefix": matter.bates_prefix}


def create_matter(session: Session, *, actor: User, name: str, description: str | None = None,
                  custodians: list[str] | None = None, customers: list[str] | None = None,
                  date_from: dt.date | None = None, date_to: dt.date | None = None,
                  bates_prefix: str | None = None) -> Matter:
    """Open a matter (records managers and admins). Custodians are staff usernames, customers customer ids."""
    _require_view(actor)
    if not may_manage(actor):
        raise deny_write(actor, "matter", None, "open a matter (records managers and admins only)")
    name = _text(name, "name", 200)
    _range(date_from, date_to)
    now = utcnow()
    matter = Matter(name=name, description=_text(description, "description", 10_000, required=False),
                    custodians=_ids(session, custodians, "custodians", User, User.username),
                    customers=_ids(session, customers, "customers", Customer, Customer.id),
                    date_from=date_from, date_to=date_to, status=OPEN, bates_prefix=_prefix(bates_prefix, name),
                    next_bates=1, next_volume=1, custody_seq=0, custody_hash=custody.GENESIS,
                    created_by=actor.username, created_at=now, updated_at=now)
    session.add(matter)
    session.flush()
    custody.record(session, matter, actor=actor.username, action="created", details=_summary(matter))
    return matter


def get_matter(session: Session, *, actor: User, matter_id: str) -> Matter:
    """A matter (managers and auditors; 404 for anyone else)."""
    return load(session, actor=actor, matter_id=matter_id)


@dataclass(frozen=True)
class MatterPage:
    """One page of matters and the cursor for the next, if any."""

    items: list[Matter]
    next_cursor: str | None


def list_matters(session: Session, *, actor: User, status: str | None = None, cursor: str | None = None,
                 limit: int = 50) -> MatterPage:
    """Matters newest first, optionally only open or closed ones."""
    _require_view(actor)
    if status is not None and status not in STATUSES:
        raise InvalidInputError(f"status must be one of {', '.join(STATUSES)}", field="status")
    stmt = select(Matter)
    if status is not None:
        stmt = stmt.where(Matter.status == status)
    if cursor:
        at, last_id = decode_cursor(cursor)
        stmt = stmt.where(or_(Matter.created_at < at, and_(Matter.created_at == at, Matter.id < last_id)))
    limit = min(max(limit, 1), 200)
    rows = list(session.execute(stmt.order_by(Matter.created_at.desc(), Matter.id.desc()).limit(limit + 1))
                .scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return MatterPage(rows, encode_cursor(rows[-1]) if more else None)  # type: ignore[arg-type]


_UNSET: Any = object()


def _active_holds(session: Session, matter_id: str) -> list[str]:
    """The matter's legal holds that are still in force."""
    return list(session.execute(select(MatterHold.hold_id).join(LegalHold, LegalHold.id == MatterHold.hold_id)
                                .where(MatterHold.matter_id == matter_id, LegalHold.state == HOLD_ACTIVE)
                                .order_by(MatterHold.placed_at, MatterHold.hold_id)).scalars())


def _close(session: Session, matter: Matter, actor: User, release_holds: bool, release_reason: str | None) -> None:
    """Close the matter for good. Its holds in force stop it, unless the caller releases them with it."""
    active = _active_holds(session, matter.id)
    if active and not release_holds:
        raise MatterStateError(f"matter {matter.id} still has {len(active)} legal holds in force "
                               f"({', '.join(active)}); release them, or close with release_holds=true and a "
                               "release_reason", matter_id=matter.id, holds=active)
    if active and not (release_reason or "").strip():
        raise InvalidInputError("release_reason is required to release the matter's holds", field="release_reason")
    for hold_id in active:
        holds.release_hold(session, actor=actor, hold_id=hold_id, reason=release_reason or "")
    now = utcnow()
    matter.status, matter.closed_by, matter.closed_at, matter.updated_at = CLOSED, actor.username, now, now
    custody.record(session, matter, actor=actor.username, action="closed",
                   details={"released_holds": active, "release_reason": release_reason} if active else {})


def update_matter(session: Session, *, actor: User, matter_id: str, name: Any = _UNSET, description: Any = _UNSET,
                  custodians: Any = _UNSET, customers: Any = _UNSET, date_from: Any = _UNSET, date_to: Any = _UNSET,
                  status: Any = _UNSET, bates_prefix: Any = _UNSET, release_holds: bool = False,
                  release_reason: str | None = None) -> Matter:
    """Change the name, description, custodians, customers, date range or Bates prefix (before the first export),
    or close the matter (for good; refused while its legal holds are in force, unless `release_holds` releases
    them with `release_reason`). Each change lands in the chain of custody with its old and new values."""
    matter = load(session, actor=actor, matter_id=matter_id, manage=True, lock=True)
    changes: dict[str, Any] = {}
    if name is not _UNSET:
        changes["name"] = _text(name, "name", 200)
    if description is not _UNSET:
        changes["description"] = _text(description, "description", 10_000, required=False)
    if custodians is not _UNSET:
        changes["custodians"] = _ids(session, custodians, "custodians", User, User.username)
    if customers is not _UNSET:
        changes["customers"] = _ids(session, customers, "customers", Customer, Customer.id)
    for key, value in (("date_from", date_from), ("date_to", date_to)):
        if value is not _UNSET:
            if value is not None and not isinstance(value, dt.date):
                raise InvalidInputError(f"{key} must be a date", field=key)
            changes[key] = value
    _range(changes.get("date_from", matter.date_from), changes.get("date_to", matter.date_to))
    if bates_prefix is not _UNSET:
        # null means "from the name": the new name's prefix, unless exports have fixed the prefix already.
        changes["bates_prefix"] = matter.bates_prefix if bates_prefix is None and matter.next_bates > 1 else \
            _prefix(bates_prefix, changes.get("name", matter.name))
        if changes["bates_prefix"] != matter.bates_prefix and matter.next_bates > 1:
            raise MatterStateError(f"matter {matter_id} has Bates-numbered exports under {matter.bates_prefix}; the "
                                   "prefix can no longer change", matter_id=matter_id)
    if status is not _UNSET and status not in STATUSES:
        raise InvalidInputError(f"status must be one of {', '.join(STATUSES)}", field="status")
    if release_holds and status != CLOSED:
        raise InvalidInputError("release_holds goes with status=closed", field="release_holds")
    if not changes and status is _UNSET:
        raise InvalidInputError("nothing to change: give name, description, custodians, customers, date_from, "
                                "date_to, bates_prefix or status", field="body")
    changes = {k: v for k, v in changes.items() if getattr(matter, k) != v}
    now = utcnow()
    if changes:
        before = {key: getattr(matter, key) for key in changes}
        for key, value in changes.items():
            setattr(matter, key, value)
        matter.updated_at = now
        custody.record(session, matter, actor=actor.username, action="updated",
                       details={**changes, "previous": before})
    if status == CLOSED:
        _close(session, matter, actor, release_holds, release_reason)
    return matter


def _meta(meta: Any) -> dict[str, str]:
    if meta is None:
        return {}
    if not isinstance(meta, dict) or len(meta) > MAX_META:
        raise InvalidInputError(f"meta must be an object of at most {MAX_META} string values", field="meta")
    for key, value in meta.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 100:
            raise InvalidInputError("metadata filter names must be 1-100 characters", field="meta")
        check_key(key)
        if not isinstance(value, str) or len(value) > 500:
            raise InvalidInputError(f"meta.{key} must be a string of at most 500 characters (search compares "
                                    "metadata as text)", field=f"meta.{key}")
    return dict(meta)


def _instant(value: dt.datetime | None, name: str) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInputError(f"{name} needs a time zone (such as 2025-01-01T00:00:00Z)", field=name)
    return value


def search_criteria(saved: MatterSearch) -> dict[str, Any]:
    """The saved query and filters as JSON (for the custody record and the API)."""
    return {"q": saved.q, "document_type": saved.document_type, "customer_id": saved.customer_id,
            "created_from": saved.created_from.isoformat() if saved.created_from else None,
            "created_to": saved.created_to.isoformat() if saved.created_to else None, "meta": saved.meta}


def add_search(session: Session, *, actor: User, matter_id: str, name: str, q: str | None = None,
               document_type: str | None = None, customer_id: str | None = None,
               created_from: dt.datetime | None = None, created_to: dt.datetime | None = None,
               meta: dict[str, str] | None = None) -> MatterSearch:
    """Save a search in the matter: the query (checked now: a malformed one is a 400 saying where) and filters
    as search.service.search takes them."""
    matter = load(session, actor=actor, matter_id=matter_id, manage=True, lock=True)
    name = _text(name, "name", 200)
    q = q.strip() if isinstance(q, str) and q.strip() else None
    parse(q)
    if document_type is not None and session.execute(
            select(DocumentType.id).where(DocumentType.name == document_type)).scalar_one_or_none() is None:
        raise InvalidInputError(f"there is no document type {document_type!r}", field="document_type")
    if customer_id is not None and session.get(Customer, customer_id) is None:
        raise InvalidInputError(f"there is no customer {customer_id}", field="customer_id")
    created_from, created_to = _instant(created_from, "created_from"), _instant(created_to, "created_to")
    if created_from is not None and created_to is not None and created_to < created_from:
        raise InvalidInputError("created_to is before created_from", field="created_to")
    if session.execute(select(MatterSearch.id).where(MatterSearch.matter_id == matter_id,
                                                     MatterSearch.name == name)).first() is not None:
        raise InvalidInputError(f"the matter already has a search called {name!r}", field="name")
    saved = MatterSearch(matter_id=matter_id, name=name, q=q, document_type=document_type, customer_id=customer_id,
                         created_from=created_from, created_to=created_to, meta=_meta(meta),
                         created_by=actor.username, created_at=utcnow())
    session.add(saved)
    session.flush()
    custody.record(session, matter, actor=actor.username, action="search.added",
                   details={"search_id": saved.id, "name": name, **search_criteria(saved)})
    return saved


def get_search(session: Session, matter: Matter, search_id: str) -> MatterSearch:
    """A saved search of this matter (404 for another matter's)."""
    saved = session.get(MatterSearch, search_id)
    if saved is None or saved.matter_id != matter.id:
        raise NotFoundError(f"search {search_id} not found in matter {matter.id}")
    return saved


def run_search(session: Session, *, actor: User, matter_id: str, search_id: str, sort: str = "relevance",
               cursor: str | None = None, limit: int = 20) -> search_service.SearchPage:
    """Run a saved search through search.service.search (only what the actor may read); audited, and the
    total and the ids returned go to the chain of custody."""
    matter = load(session, actor=actor, matter_id=matter_id, manage=True, lock=True)
    saved = get_search(session, matter, search_id)
    page = search_service.search(session, actor=actor, q=saved.q, document_type=saved.document_type,
                                 customer_id=saved.customer_id, created_from=saved.created_from,
                                 created_to=saved.created_to, meta=saved.meta, sort=sort, cursor=cursor,
                                 limit=limit)
    custody.record(session, matter, actor=actor.username, action="search.run",
                   details={"search_id": saved.id, "name": saved.name, "total": page.total, "cursor": cursor,
                            "document_ids": [h.document_id for h in page.hits]})
    return page


@dataclass(frozen=True)
class MatterDetail:
    """A matter with its saved searches, holds, exports and the verification of its chain of custody."""

    matter: Matter
    searches: list[MatterSearch]
    holds: list[MatterHold]
    exports: list[MatterExport]
    chain: custody.CustodyReport


def detail(session: Session, matter: Matter) -> MatterDetail:
    """Everything the matter page shows."""
    def rows(model: type, order: Any) -> list[Any]:
        return list(session.execute(select(model).where(model.matter_id == matter.id).order_by(order)).scalars())

    return MatterDetail(matter, rows(MatterSearch, MatterSearch.created_at), rows(MatterHold, MatterHold.placed_at),
                        rows(MatterExport, MatterExport.requested_at), custody.verify_custody(session, matter))


def custody_events(session: Session, *, actor: User, matter_id: str, after: int = 0,
                   limit: int = 100) -> tuple[Matter, list[MatterEvent], custody.CustodyReport]:
    """A page of the matter's chain of custody (events after `after`) and the verification of the whole chain."""
    matter = load(session, actor=actor, matter_id=matter_id)
    limit = min(max(limit, 1), 1000)
    events = list(session.execute(select(MatterEvent).where(MatterEvent.matter_id == matter_id,
                                                            MatterEvent.seq > after)
                                  .order_by(MatterEvent.seq).limit(limit)).scalars())
    return matter, events, custody.verify_custody(session, matter)
