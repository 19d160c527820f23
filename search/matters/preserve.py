"""Preservation: which documents a saved search matches IN THE DATABASE now, and a legal hold on exactly those.

Filters (document type, customer, created range, metadata) are SQL over `documents`. Text cannot be matched in
SQL, so the index proposes candidates and the database confirms them:
- a candidate whose index entry is current (its revision is the document's and it is not queued for indexing)
  keeps the index's text verdict, if the document still exists, is not destroyed and matches the filters in the
  database;
- a document that matches the filters but whose index entry is missing, stale or queued (the index has not caught
  up with it) is judged here: its current text (the index's extraction when the content is unchanged, else
  extracted now) against the query tree (`text.matches`). More than MAX_UNSETTLED such extractions refuse the
  call (503) rather than guess.
The index holds no trashed document, so every trashed document that matches the filters is judged here the same
way (its text extracted now): a hold or export covers the trash as a search without text does. More than
MAX_UNSETTLED of them refuse the call (422: a narrower search), since waiting would not help."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from records.models import HoldItem
from records.service import holds
from repository.errors import InvalidInputError
from repository.models import Document, DocumentType, DocumentVersion, User
from repository.service.documents import ACTIVE, DESTROYED, TRASHED
from search.backend import MAX_DEPTH, SearchQuery, get_backend
from search.errors import SearchUnavailableError
from search.matters import custody, text
from search.matters.models import MatterHold, MatterSearch
from search.matters.service import get_search, load, search_criteria
from search.metadata import meta_equals
from search.models import SearchEntry, SearchQueueItem
from search.query import parse

MAX_DOCUMENTS = holds.MAX_PER_CALL
MAX_UNSETTLED = 500  # documents whose text must be extracted now, per call
MAX_BEHIND = 20_000  # documents judged here at all (the index is rebuilding beyond that)
PAGE = 1000
CHUNK = 5000


@dataclass(frozen=True)
class Selection:
    """The documents a saved search matches in the database (oldest first) and how the text was decided."""

    document_ids: list[str]
    index_candidates: int = 0  # hits the index proposed
    judged_here: int = 0  # documents the index does not vouch for (behind, or in the trash), judged on their text
    not_confirmed: int = 0  # index hits the database did not confirm (gone, destroyed, filters no longer match)
    in_trash: frozenset[str] = frozenset()  # the selected documents that are in the trash


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def _type_id(session: Session, saved: MatterSearch) -> str | None:
    if saved.document_type is None:
        return None
    type_id = session.execute(select(DocumentType.id).where(DocumentType.name == saved.document_type)) \
        .scalar_one_or_none()
    if type_id is None:
        raise InvalidInputError(f"the saved search names the document type {saved.document_type!r}, which no "
                                "longer exists", field="search_id")
    return type_id


def conditions(session: Session, saved: MatterSearch) -> list[ColumnElement[bool]]:
    """The saved search's filters as SQL on `documents` (metadata compared as the index compares it)."""
    where: list[ColumnElement[bool]] = [Document.state != DESTROYED]
    if (type_id := _type_id(session, saved)) is not None:
        where.append(Document.document_type_id == type_id)
    if saved.customer_id is not None:
        where.append(Document.customer_id == saved.customer_id)
    if saved.created_from is not None:
        where.append(Document.created_at >= saved.created_from)
    if saved.created_to is not None:
        where.append(Document.created_at < saved.created_to)
    where += [meta_equals(Document.meta, key, value) for key, value in (saved.meta or {}).items()]
    return where


def _ordered(session: Session, where: list[ColumnElement[bool]], ids: set[str] | None = None) -> list[str]:
    """Ids matching `where` (and among `ids` when given), oldest first."""
    stmt = select(Document.id, Document.created_at).where(*where)
    if ids is None:
        count = session.execute(select(func.count()).select_from(Document).where(*where)).scalar_one()
        if count > MAX_DOCUMENTS:
            raise InvalidInputError(f"the saved search matches {count} documents; at most {MAX_DOCUMENTS} can be "
                                    "held or exported at once: save a narrower search", field="search_id",
                                    matched=count)
        rows = session.execute(stmt).all()
    else:
        rows = [r for chunk in _chunks(sorted(ids)) for r in session.execute(stmt.where(Document.id.in_(chunk)))]
    return [r.id for r in sorted(rows, key=lambda r: (r.created_at, r.id))]


def _index_hits(session: Session, saved: MatterSearch) -> set[str]:
    """Every document the index matches for the saved query and filters, whatever the caller may read."""
    type_id = _type_id(session, saved)
    every_type = frozenset(session.execute(select(DocumentType.id)).scalars())
    type_ids = [type_id] if type_id else sorted(every_type)
    query = SearchQuery(expr=parse(saved.q), type_ids=type_ids, all_type_ids=every_type, include_restricted=True,
                        customer_id=saved.customer_id, created_from=saved.created_from, created_to=saved.created_to,
                        meta=saved.meta or {}, sort="oldest", limit=PAGE, facets=False)
    backend, found, offset = get_backend(), set(), 0
    while True:
        try:
            result = backend.search(session, replace(query, offset=offset))
        except ConnectionError as exc:
            raise SearchUnavailableError("search is unavailable right now; retry shortly", retry_after=5) from exc
        if result.total > MAX_DEPTH:
            raise InvalidInputError(f"the text matches {result.total} documents in the index; at most {MAX_DEPTH} "
                                    "can be confirmed at once: save a narrower search", field="search_id",
                                    matched=result.total)
        found.update(h.document_id for h in result.hits)
        offset += PAGE
        if offset >= result.total or not result.hits:
            return found


def _unsettled(session: Session, where: list[ColumnElement[bool]]) -> tuple[list[str], set[str]]:
    """Documents matching the filters whose text the index does not vouch for: active ones whose entry is
    missing, stale or queued, and every trashed one (the index holds none; a trashed candidate it still held is
    behind too). Returns all of them and the trashed ones among them."""
    entry = and_(SearchEntry.document_id == Document.id)
    behind = or_(SearchEntry.id.is_(None), SearchEntry.revision != Document.revision,
                 Document.id.in_(select(SearchQueueItem.document_id)))
    stmt = select(Document.id).outerjoin(SearchEntry, entry).where(*where, behind, Document.state == ACTIVE)
    trashed = set(session.execute(select(Document.id).where(*where, Document.state == TRASHED)).scalars())
    return sorted(set(session.execute(stmt).scalars()) | trashed), trashed


def _check_budget(rows: int, to_extract: list[str], trashed: set[str]) -> None:
    """Refuse a call that would read too many texts now: 422 when the trash alone is too much (waiting would not
    help), else 503 while the index catches up."""
    in_trash = sum(1 for i in to_extract if i in trashed)
    if in_trash > MAX_UNSETTLED:
        raise InvalidInputError(f"the saved search's filters match {len(trashed)} documents in the trash, whose text "
                                f"is not indexed and must be read now ({in_trash} of them; at most {MAX_UNSETTLED} "
                                "per call): save a narrower search", field="search_id", matched=len(trashed))
    if len(to_extract) > MAX_UNSETTLED or rows > MAX_BEHIND:
        raise SearchUnavailableError(f"the index has not caught up with {rows - len(trashed)} documents this search "
                                     f"could match ({len(to_extract)} documents, {in_trash} of them in the trash, "
                                     f"need their text read now; at most {MAX_UNSETTLED}); retry once indexing has "
                                     "caught up", retry_after=30)


def _judge(session: Session, saved: MatterSearch, ids: list[str], trashed: set[str]) -> set[str]:
    """The documents among `ids` whose current title and text match the saved query."""
    expr = parse(saved.q)
    rows = []
    for chunk in _chunks(ids):
        rows += session.execute(select(Document.title, DocumentVersion).join(DocumentVersion, and_(
            DocumentVersion.document_id == Document.id, DocumentVersion.major == Document.current_major,
            DocumentVersion.minor == Document.current_minor)).where(Document.id.in_(chunk))).all()
    known = {version.document_id: text.indexed_text(session, version) for _, version in rows}
    _check_budget(len(rows), [i for i, found in known.items() if found is None], trashed)
    matched = set()
    for title, version in rows:
        found = known[version.document_id] or text.current_text(session, version)
        if text.matches(expr, title, found[0]):
            matched.add(version.document_id)
    return matched


def _trashed_among(session: Session, ids: list[str]) -> frozenset[str]:
    return frozenset(i for chunk in _chunks(ids) for i in session.execute(
        select(Document.id).where(Document.id.in_(chunk), Document.state == TRASHED)).scalars())


def select_documents(session: Session, saved: MatterSearch) -> Selection:
    """The documents the saved search matches in the database now (see the module docstring)."""
    where = conditions(session, saved)
    if parse(saved.q) is None:
        ids = _ordered(session, where)
        return Selection(ids, in_trash=_trashed_among(session, ids))
    hits = _index_hits(session, saved)
    unsettled, trashed = _unsettled(session, where)
    settled_hits = hits - set(unsettled)
    confirmed = set(_ordered(session, where, settled_hits))
    judged = _judge(session, saved, unsettled, trashed)
    ids = _ordered(session, where, confirmed | judged)
    if len(ids) > MAX_DOCUMENTS:
        raise InvalidInputError(f"the saved search matches {len(ids)} documents; at most {MAX_DOCUMENTS} can be "
                                "held or exported at once: save a narrower search", field="search_id")
    return Selection(ids, index_candidates=len(hits), judged_here=len(unsettled),
                     not_confirmed=len(settled_hits - confirmed), in_trash=frozenset(set(ids) & trashed))


@dataclass(frozen=True)
class PlacedHold:
    """A hold placed from a saved search: the matter's record of it, and each document with its versions."""

    placed: MatterHold
    covered: dict[str, list[str]]
    selection: Selection


def _versions(session: Session, hold_id: str) -> dict[str, list[str]]:
    """The version labels records stored for each item of the hold."""
    return dict(session.execute(select(HoldItem.document_id, HoldItem.versions).where(HoldItem.hold_id == hold_id))
                .all())


def place_hold(session: Session, *, actor: User, matter_id: str, search_id: str,
               reason: str | None = None) -> PlacedHold:
    """Evaluate a saved search against the database now and put exactly the documents it matches under a new
    legal hold (records' hold service, matter_ref = the matter id); the ids and versions go to the custody
    record. 422 when it matches nothing; nothing is written then."""
    matter = load(session, actor=actor, matter_id=matter_id, manage=True, lock=True)
    saved = get_search(session, matter, search_id)
    selection = select_documents(session, saved)
    if not selection.document_ids:
        raise InvalidInputError(f"the saved search {saved.name!r} matches no documents in the database now; no "
                                "hold was placed", field="search_id")
    why = reason if isinstance(reason, str) and reason.strip() else \
        f"Preservation for matter {matter.name!r}, from the saved search {saved.name!r}"
    hold = holds.create_hold(session, actor=actor, name=f"{matter.name}: {saved.name}"[:200], reason=why,
                             matter_ref=matter.id)
    holds.add_items(session, actor=actor, hold_id=hold.id, document_ids=selection.document_ids)
    stored = _versions(session, hold.id)
    covered = {i: list(stored[i]) for i in selection.document_ids}
    placed = MatterHold(matter_id=matter.id, hold_id=hold.id, search_id=saved.id, documents=len(covered),
                        versions=sum(len(v) for v in covered.values()), placed_by=actor.username)
    session.add(placed)
    session.flush()
    details: dict[str, Any] = {
        "hold_id": hold.id, "search_id": saved.id, "search": search_criteria(saved), "reason": why,
        "documents": [{"document_id": i, "versions": v, "in_trash": i in selection.in_trash}
                      for i, v in covered.items()],
        "document_count": len(covered), "version_count": placed.versions, "in_trash_count": len(selection.in_trash),
        "index_candidates": selection.index_candidates, "judged_in_database": selection.judged_here,
        "not_confirmed_by_database": selection.not_confirmed}
    custody.record(session, matter, actor=actor.username, action="hold.placed", details=details)
    return PlacedHold(placed, covered, selection)
