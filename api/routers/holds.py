"""Legal holds: open a hold, add documents to it (by id, by customer, or by a metadata query), release it, and
read holds and their items. Records managers and admins only: others get 403 on create and list, 404 on a hold."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.deps import CurrentUser
from api.idempotency import idempotent_create
from records.models import HoldItem, LegalHold
from records.service import holds
from repository.db import transaction
from repository.models import User

router = APIRouter(prefix="/api/v1/holds", tags=["holds"])
FIRST_ITEMS = 100
DocumentId = Annotated[str, Field(min_length=1, max_length=100)]


class HoldIn(BaseModel):
    """A legal hold to open."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="like: Smith v. Bank, disclosure")
    reason: str = Field(min_length=1, max_length=10_000, description="why the documents must be kept")
    matter_ref: str | None = Field(None, max_length=200, description="the legal matter's reference")


class HoldItemsIn(BaseModel):
    """Documents to hold: exactly one of document_ids, customer_id or query."""

    model_config = ConfigDict(extra="forbid")

    document_ids: list[DocumentId] | None = Field(None, max_length=holds.MAX_PER_CALL)
    customer_id: str | None = Field(None, min_length=1, max_length=36,
                                    description="every document of the customer that is not destroyed")
    # Any: the service checks it and names the bad key (the 422 handler drops a location part called "query").
    query: Any = Field(
        None, description="document_type, customer_id, created_from, created_to (ISO dates or date-times; a date "
        'alone includes the whole day), meta ({"key": value} equality), title_contains',
        json_schema_extra={"type": "object"})


class ReleaseIn(BaseModel):
    """Why the hold ends."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=10_000)


class HoldItemOut(BaseModel):
    """A document under a hold, the versions it had when added, and when the hold on it was released."""

    document_id: str
    source: str
    added_by: str
    added_at: dt.datetime
    versions: list[str]
    released_at: dt.datetime | None


class HoldOut(BaseModel):
    """A legal hold and how many documents it holds."""

    id: str
    name: str
    reason: str
    matter_ref: str | None
    state: str
    created_by: str
    created_at: dt.datetime
    released_by: str | None
    released_at: dt.datetime | None
    release_reason: str | None
    item_count: int
    active_count: int


class HoldDetailOut(HoldOut):
    """A hold with the first page of its items."""

    items: list[HoldItemOut]
    next_after: str | None = Field(description="pass as `after` to GET /holds/{id}/items for the next page")


class HoldItemsPage(BaseModel):
    """A page of a hold's items."""

    items: list[HoldItemOut]
    next_after: str | None


class HoldListOut(BaseModel):
    """A page of holds."""

    items: list[HoldOut]
    next_cursor: str | None


class CoverageOut(BaseModel):
    """What adding documents covered."""

    hold_id: str
    source: str
    added: list[str]
    already_held_here: list[str]
    not_found: list[str]
    added_count: int
    already_held_count: int


def _item(i: HoldItem) -> dict:
    return HoldItemOut(document_id=i.document_id, source=i.source, added_by=i.added_by, added_at=i.added_at,
                       versions=list(i.versions), released_at=i.released_at).model_dump(mode="json")


def _hold(h: LegalHold, counts: tuple[int, int]) -> dict:
    return HoldOut(id=h.id, name=h.name, reason=h.reason, matter_ref=h.matter_ref, state=h.state,
                   created_by=h.created_by, created_at=h.created_at, released_by=h.released_by,
                   released_at=h.released_at, release_reason=h.release_reason, item_count=counts[0],
                   active_count=counts[1]).model_dump(mode="json")


def _detail(session: Session, user: User, h: LegalHold) -> dict:
    page = holds.hold_items(session, actor=user, hold_id=h.id, limit=FIRST_ITEMS)
    counts = holds.hold_counts(session, hold_ids=[h.id])[h.id]
    return {**_hold(h, counts), "items": [_item(i) for i in page.items], "next_after": page.next_after}


@router.post("", status_code=201, response_model=HoldDetailOut)
def create(body: HoldIn, user: CurrentUser, idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Open a legal hold (records managers); add documents with POST /holds/{id}/items."""

    def make(session: Session) -> dict:
        hold = holds.create_hold(session, actor=user, name=body.name, reason=body.reason, matter_ref=body.matter_ref)
        return _detail(session, user, hold)

    return idempotent_create(user, idempotency_key, ("POST", "/holds", body.model_dump()), make,
                             headers=lambda b: {"Location": f"/api/v1/holds/{b['id']}"})


@router.get("", response_model=HoldListOut)
def list_holds(
    user: CurrentUser,
    state: Annotated[str | None, Query(pattern="^(active|released)$")] = None,
    matter_ref: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict:
    """Holds newest first; follow `next_cursor` for more."""
    with transaction(readonly=True) as session:
        page = holds.list_holds(session, actor=user, state=state, matter_ref=matter_ref, cursor=cursor, limit=limit)
        counts = holds.hold_counts(session, hold_ids=[h.id for h in page.items])
        return {"items": [_hold(h, counts[h.id]) for h in page.items], "next_cursor": page.next_cursor}


@router.get("/{hold_id}", response_model=HoldDetailOut)
def read(hold_id: str, user: CurrentUser) -> dict:
    """A hold, its counts and the first page of its items."""
    with transaction(readonly=True) as session:
        return _detail(session, user, holds.get_hold(session, actor=user, hold_id=hold_id))


@router.get("/{hold_id}/items", response_model=HoldItemsPage)
def items(hold_id: str, user: CurrentUser, after: Annotated[str | None, Query(max_length=100)] = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    """A hold's items by document id, `limit` at a time after the document id `after`."""
    with transaction(readonly=True) as session:
        page = holds.hold_items(session, actor=user, hold_id=hold_id, after=after, limit=limit)
        return {"items": [_item(i) for i in page.items], "next_after": page.next_after}


@router.post("/{hold_id}/items", response_model=CoverageOut)
def add_items(hold_id: str, body: HoldItemsIn, user: CurrentUser) -> dict:
    """Hold documents: by `document_ids`, every document of `customer_id`, or those `query` matches in the
    database. All or nothing: unknown or destroyed ids refuse the call (422 with `not_found`)."""
    with transaction() as session:
        done = holds.add_items(session, actor=user, hold_id=hold_id, document_ids=body.document_ids,
                               customer_id=body.customer_id, query=body.query)
    return {"hold_id": done.hold_id, "source": done.source, "added": done.added,
            "already_held_here": done.already_held_here, "not_found": done.not_found,
            "added_count": len(done.added), "already_held_count": len(done.already_held_here)}


@router.post("/{hold_id}/release", response_model=HoldDetailOut)
def release(hold_id: str, body: ReleaseIn, user: CurrentUser) -> dict:
    """Release the hold (audited with the reason); its documents are free once no other hold covers them."""
    with transaction() as session:
        hold = holds.release_hold(session, actor=user, hold_id=hold_id, reason=body.reason)
        session.flush()
        return _detail(session, user, hold)
