"""E-discovery matters: open and read matters, save and run searches, place legal holds from a search, produce
exports (202; built in the background) and download them, and read the chain of custody. Records managers and
admins manage matters; auditors read them (403 on changes); anyone else gets 404."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import CurrentUser
from api.errors import register_error_mapping
from api.idempotency import idempotent_create
from api.routers.search import SearchOut, hit_out
from records.models import LegalHold
from records.service.holds import hold_counts
from repository.db import transaction
from search.matters import exports, preserve
from search.matters import service as matters
from search.matters.errors import ExportExpiredError, ExportNotReadyError, MatterStateError
from search.matters.models import Matter, MatterEvent, MatterExport, MatterHold, MatterSearch

# A closed matter, or a change that conflicts with what the matter did, is a conflict; so is a download of an
# export that has not completed.
register_error_mapping([(MatterStateError, 409), (ExportNotReadyError, 409), (ExportExpiredError, 410)])

router = APIRouter(prefix="/api/v1/matters", tags=["matters"])
Id = Annotated[str, Field(min_length=1, max_length=100)]


class MatterIn(BaseModel):
    """A matter to open."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="like: Smith v. Bank")
    description: str | None = Field(None, max_length=10_000)
    custodians: list[Annotated[str, Field(min_length=1, max_length=150)]] | None = Field(
        None, max_length=matters.MAX_LIST, description="staff usernames")
    customers: list[Id] | None = Field(None, max_length=matters.MAX_LIST, description="customer ids")
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    bates_prefix: str | None = Field(None, description="1-12 upper-case letters or digits; from the name if absent")


class MatterPatch(BaseModel):
    """Changes to a matter: its name, description, custodians, customers, date range (null clears), its Bates
    prefix (before the first export), or closing it."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    custodians: list[Annotated[str, Field(min_length=1, max_length=150)]] | None = Field(
        None, max_length=matters.MAX_LIST, description="staff usernames (replaces the list)")
    customers: list[Id] | None = Field(None, max_length=matters.MAX_LIST,
                                       description="customer ids (replaces the list)")
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    status: Literal["open", "closed"] | None = None
    bates_prefix: str | None = None
    release_holds: bool = Field(False, description="with status=closed: release the matter's legal holds in force "
                                                   "(else closing is refused while there are any)")
    release_reason: str | None = Field(None, max_length=10_000, description="why the holds are released")


class SavedSearchIn(BaseModel):
    """A search to save in the matter, as GET /search takes it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    q: str | None = Field(None, max_length=1000, description='words, "phrases", AND/OR/NOT, prefix*')
    document_type: str | None = Field(None, max_length=100)
    customer_id: str | None = Field(None, max_length=36)
    created_from: AwareDatetime | None = None
    created_to: AwareDatetime | None = None
    meta: dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=500)]] | None = Field(
        None, description="metadata equality filters, compared as text")


class RunIn(BaseModel):
    """How to page a saved search's results."""

    model_config = ConfigDict(extra="forbid")

    sort: Literal["relevance", "newest", "oldest"] = "relevance"
    cursor: str | None = Field(None, max_length=500)
    limit: int = Field(20, ge=1, le=100)


class HoldIn(BaseModel):
    """The saved search whose documents to preserve."""

    model_config = ConfigDict(extra="forbid")

    search_id: Id
    reason: str | None = Field(None, max_length=10_000)


class ExportIn(BaseModel):
    """What to produce: exactly one of a saved search or document ids."""

    model_config = ConfigDict(extra="forbid")

    search_id: Id | None = None
    document_ids: list[Id] | None = Field(None, max_length=preserve.MAX_DOCUMENTS)


class SavedSearchOut(BaseModel):
    """A saved search."""

    id: str
    name: str
    q: str | None
    document_type: str | None
    customer_id: str | None
    created_from: dt.datetime | None
    created_to: dt.datetime | None
    meta: dict[str, str]
    created_by: str
    created_at: dt.datetime


class MatterHoldOut(BaseModel):
    """A hold placed from a saved search, with the hold's current state."""

    id: str
    hold_id: str
    search_id: str
    documents: int
    versions: int
    placed_by: str
    placed_at: dt.datetime
    state: str
    active_count: int


class ExportOut(BaseModel):
    """An export and, once completed, its hashes and where to download it."""

    id: str
    matter_id: str
    state: str
    volume: str
    source: str
    search_id: str | None
    requested_by: str
    requested_at: dt.datetime
    document_count: int
    excluded_unreadable: int
    bates_begin: str | None
    bates_end: str | None
    attempts: int
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    error: str | None
    package_sha256: str | None
    zip_sha256: str | None
    zip_size: int | None
    expires_at: dt.datetime | None = Field(description="when the package will be deleted (null: kept)")
    expired_at: dt.datetime | None
    download: str | None


class CustodyOut(BaseModel):
    """The verification of a matter's chain of custody."""

    ok: bool
    checked: int
    bad_seq: int | None
    reason: str | None


class MatterOut(BaseModel):
    """A matter."""

    id: str
    name: str
    description: str
    custodians: list[str]
    customers: list[str]
    date_from: dt.date | None
    date_to: dt.date | None
    status: str
    bates_prefix: str
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    closed_by: str | None
    closed_at: dt.datetime | None


class MatterDetailOut(MatterOut):
    """A matter with its searches, holds, exports and custody verification."""

    searches: list[SavedSearchOut]
    holds: list[MatterHoldOut]
    exports: list[ExportOut]
    custody: CustodyOut


class MatterListOut(BaseModel):
    """A page of matters."""

    items: list[MatterOut]
    next_cursor: str | None


class CoveredOut(BaseModel):
    """A held document and the version labels the hold covers."""

    document_id: str
    versions: list[str]
    in_trash: bool = False


class PlacedHoldOut(BaseModel):
    """What a hold placed from a search covers, and how the text part was decided."""

    id: str
    hold_id: str
    search_id: str
    document_count: int
    version_count: int
    documents: list[CoveredOut]
    in_trash_count: int = 0
    index_candidates: int
    judged_in_database: int
    not_confirmed_by_database: int


class EventOut(BaseModel):
    """One event of the chain of custody."""

    seq: int
    at: dt.datetime
    actor: str
    action: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class CustodyPage(BaseModel):
    """A page of the chain of custody and the verification of the whole chain."""

    verification: CustodyOut
    events: list[EventOut]
    next_after: int | None


def _matter(m: Matter) -> dict:
    return MatterOut.model_validate(m, from_attributes=True).model_dump(mode="json")


def _search(s: MatterSearch) -> dict:
    return SavedSearchOut.model_validate(s, from_attributes=True).model_dump(mode="json")


def _export(e: MatterExport, prefix: str) -> dict:
    base = f"/api/v1/matters/{e.matter_id}/exports/{e.id}"
    return ExportOut(
        id=e.id, matter_id=e.matter_id, state=e.state, volume=e.volume, source=e.source, search_id=e.search_id,
        requested_by=e.requested_by, requested_at=e.requested_at, document_count=e.document_count,
        excluded_unreadable=e.excluded_unreadable,
        bates_begin=f"{prefix}{e.bates_begin:06d}" if e.bates_begin is not None else None,
        bates_end=f"{prefix}{e.bates_end:06d}" if e.bates_end is not None else None, attempts=e.attempts,
        started_at=e.started_at, completed_at=e.completed_at, error=e.error, package_sha256=e.package_sha256,
        zip_sha256=e.zip_sha256, zip_size=e.zip_size, expires_at=exports.expires_at(e), expired_at=e.expired_at,
        download=f"{base}/download" if e.state == exports.COMPLETED else None).model_dump(mode="json")


def _holds(session: Session, rows: list[MatterHold]) -> list[dict]:
    ids = [h.hold_id for h in rows]
    states = dict(session.execute(select(LegalHold.id, LegalHold.state).where(LegalHold.id.in_(ids))).all())
    counts = hold_counts(session, hold_ids=ids)
    return [MatterHoldOut(id=h.id, hold_id=h.hold_id, search_id=h.search_id, documents=h.documents,
                          versions=h.versions, placed_by=h.placed_by, placed_at=h.placed_at,
                          state=states.get(h.hold_id, "unknown"), active_count=counts[h.hold_id][1]
                          ).model_dump(mode="json") for h in rows]


def _detail(session: Session, matter: Matter) -> dict:
    found = matters.detail(session, matter)
    return {**_matter(matter), "searches": [_search(s) for s in found.searches],
            "holds": _holds(session, found.holds),
            "exports": [_export(e, matter.bates_prefix) for e in found.exports],
            "custody": found.chain.as_dict()}


@router.post("", status_code=201, response_model=MatterDetailOut)
def create(body: MatterIn, user: CurrentUser,
           idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Open a matter (records managers and admins); honours Idempotency-Key."""

    def make(session: Session) -> dict:
        matter = matters.create_matter(session, actor=user, **body.model_dump())
        session.flush()
        return _detail(session, matter)

    return idempotent_create(user, idempotency_key, ("POST", "/matters", body.model_dump(mode="json")), make,
                             headers=lambda b: {"Location": f"/api/v1/matters/{b['id']}"})


@router.get("", response_model=MatterListOut)
def list_matters(user: CurrentUser, status: Annotated[str | None, Query(pattern="^(open|closed)$")] = None,
                 cursor: Annotated[str | None, Query(max_length=500)] = None,
                 limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict:
    """Matters newest first; follow `next_cursor` for more."""
    with transaction(readonly=True) as session:
        page = matters.list_matters(session, actor=user, status=status, cursor=cursor, limit=limit)
        return {"items": [_matter(m) for m in page.items], "next_cursor": page.next_cursor}


@router.get("/{matter_id}", response_model=MatterDetailOut)
def read(matter_id: str, user: CurrentUser) -> dict:
    """A matter with its saved searches, holds, exports and the verification of its chain of custody."""
    with transaction(readonly=True) as session:
        return _detail(session, matters.get_matter(session, actor=user, matter_id=matter_id))


@router.patch("/{matter_id}", response_model=MatterDetailOut)
def patch(matter_id: str, body: MatterPatch, user: CurrentUser) -> dict:
    """Change the name, description, custodians, customers, date range or Bates prefix, or close the matter (409
    once closed, and 409 while its legal holds are in force unless release_holds releases them)."""
    with transaction() as session:
        matter = matters.update_matter(session, actor=user, matter_id=matter_id,
                                       **body.model_dump(exclude_unset=True))
        session.flush()
        return _detail(session, matter)


@router.post("/{matter_id}/searches", status_code=201, response_model=SavedSearchOut)
def add_search(matter_id: str, body: SavedSearchIn, user: CurrentUser,
               idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Save a search in the matter (a malformed query is a 400 saying where)."""

    def make(session: Session) -> dict:
        return _search(matters.add_search(session, actor=user, matter_id=matter_id, **body.model_dump()))

    return idempotent_create(user, idempotency_key, ("POST", f"/matters/{matter_id}/searches",
                                                     body.model_dump(mode="json")), make)


@router.post("/{matter_id}/searches/{search_id}/run", response_model=SearchOut)
def run(matter_id: str, search_id: str, user: CurrentUser, body: RunIn | None = None) -> SearchOut:
    """Run a saved search over what the caller may read (audited; in the chain of custody)."""
    body = body or RunIn()
    with transaction() as session:
        page = matters.run_search(session, actor=user, matter_id=matter_id, search_id=search_id, sort=body.sort,
                                  cursor=body.cursor, limit=body.limit)
    return SearchOut(total=page.total, facets=page.facets, next_cursor=page.next_cursor,
                     hits=[hit_out(h) for h in page.hits])


@router.post("/{matter_id}/holds", status_code=201, response_model=PlacedHoldOut)
def place_hold(matter_id: str, body: HoldIn, user: CurrentUser,
               idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Place a legal hold on exactly the documents a saved search matches in the database now."""

    def make(session: Session) -> dict:
        placed = preserve.place_hold(session, actor=user, matter_id=matter_id, search_id=body.search_id,
                                     reason=body.reason)
        row, sel = placed.placed, placed.selection
        return {"id": row.id, "hold_id": row.hold_id, "search_id": row.search_id, "document_count": row.documents,
                "version_count": row.versions,
                "documents": [{"document_id": i, "versions": v, "in_trash": i in sel.in_trash}
                              for i, v in placed.covered.items()],
                "in_trash_count": len(sel.in_trash), "index_candidates": sel.index_candidates,
                "judged_in_database": sel.judged_here, "not_confirmed_by_database": sel.not_confirmed}

    return idempotent_create(user, idempotency_key, ("POST", f"/matters/{matter_id}/holds",
                                                     body.model_dump(mode="json")), make)


@router.post("/{matter_id}/exports", status_code=202, response_model=ExportOut)
def request_export(matter_id: str, body: ExportIn, user: CurrentUser,
                   idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Queue a production of a saved search's documents or of document ids (202; poll the Location)."""

    def make(session: Session) -> dict:
        export = exports.request_export(session, actor=user, matter_id=matter_id, search_id=body.search_id,
                                        document_ids=body.document_ids)
        return _export(export, session.get(Matter, matter_id).bates_prefix)

    return idempotent_create(user, idempotency_key, ("POST", f"/matters/{matter_id}/exports",
                                                     body.model_dump(mode="json")), make, status_code=202,
                             headers=lambda b: {"Location": f"/api/v1/matters/{matter_id}/exports/{b['id']}"})


@router.get("/{matter_id}/exports/{export_id}", response_model=ExportOut)
def read_export(matter_id: str, export_id: str, user: CurrentUser) -> dict:
    """An export's state; once completed, its hashes and download link."""
    with transaction(readonly=True) as session:
        export = exports.get_export(session, actor=user, matter_id=matter_id, export_id=export_id)
        return _export(export, session.get(Matter, matter_id).bates_prefix)


@router.get("/{matter_id}/exports/{export_id}/download", response_class=StreamingResponse)
def download(matter_id: str, export_id: str, user: CurrentUser) -> StreamingResponse:
    """The export's ZIP, streamed (409 until it has completed); the download is in the chain of custody."""
    with transaction() as session:
        export, body = exports.open_download(session, actor=user, matter_id=matter_id, export_id=export_id)
        name = f"{session.get(Matter, matter_id).bates_prefix}-{export.volume}.zip"
    digest = base64.b64encode(bytes.fromhex(export.zip_sha256)).decode()
    return StreamingResponse(body, media_type="application/zip", headers={
        "Content-Length": str(export.zip_size), "Repr-Digest": f"sha-256=:{digest}:",
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


@router.get("/{matter_id}/custody", response_model=CustodyPage)
def custody(matter_id: str, user: CurrentUser, after: Annotated[int, Query(ge=0)] = 0,
            limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    """The chain of custody, `limit` events after `after`, and whether the whole chain verifies."""
    with transaction(readonly=True) as session:
        _, events, report = matters.custody_events(session, actor=user, matter_id=matter_id, after=after,
                                                   limit=limit)
        return {"verification": report.as_dict(), "events": [_event(e) for e in events],
                "next_after": events[-1].seq if len(events) == limit else None}


def _event(e: MatterEvent) -> dict:
    return EventOut.model_validate(e, from_attributes=True).model_dump(mode="json")

