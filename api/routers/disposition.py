"""Disposition batches: propose one now (or count what is due), read batches and their items, exclude documents,
approve (execution follows in the background) or reject. Records managers and admins only: others get 403 on
the list and on actions, 404 on a batch."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.deps import CurrentUser
from records.models import DispositionBatch
from records.service import disposition
from records.service.common import require_records_manager
from records.service.disposition.approval import MAX_EXCLUDE, MAX_REASON, ItemRow
from records.service.disposition.states import BATCH_STATES
from repository.db import transaction
from repository.models import User

router = APIRouter(prefix="/api/v1/disposition", tags=["disposition"])
FIRST_ITEMS = 100
DocumentId = Annotated[str, Field(min_length=1, max_length=100)]
Reason = Annotated[str, Field(min_length=1, max_length=MAX_REASON)]
EXECUTION = ("approved: the records scheduler of `postroom serve` or `postroom worker` carries the batch out "
             "within a minute (or run `postroom records execute {id}`); follow its state at "
             "/api/v1/disposition/batches/{id}")


class ExclusionIn(BaseModel):
    """A document to leave out of the batch, and why."""

    model_config = ConfigDict(extra="forbid")

    document_id: DocumentId
    reason: Reason


class ApproveIn(BaseModel):
    """Optional exclusions made together with the approval."""

    model_config = ConfigDict(extra="forbid")

    exclude: list[ExclusionIn] = Field(default_factory=list, max_length=MAX_EXCLUDE)


class ExcludeIn(BaseModel):
    """Documents to leave out of a proposed batch; they go to review (extend or reclassify them)."""

    model_config = ConfigDict(extra="forbid")

    document_ids: list[DocumentId] = Field(min_length=1, max_length=MAX_EXCLUDE)
    reason: Reason


class RejectIn(BaseModel):
    """Why the batch is rejected; its documents go to review."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason


class SweepIn(BaseModel):
    """Propose a batch now, or with `dry_run` only count what is due."""

    model_config = ConfigDict(extra="forbid")

    dry_run: bool = False


class CountOut(BaseModel):
    """How many documents of a class are due for an action."""

    class_id: str | None
    class_code: str | None
    action: str
    count: int


class SweepOut(BaseModel):
    """What a sweep found (dry run) or proposed; `batch_id` is null when nothing was proposed."""

    as_of: dt.datetime
    dry_run: bool
    total: int
    counts: list[CountOut]
    batch_id: str | None
    more_due: bool


class ItemOut(BaseModel):
    """A document in a batch, the action its rule asks for, and what became of it."""

    document_id: str
    title: str
    document_type: str
    class_code: str | None
    action: str
    due_at: dt.datetime | None
    excluded: bool
    exclude_reason: str | None
    excluded_by: str | None
    outcome: str | None = Field(description="null until executed; destroyed, transferred, review or skipped")
    outcome_at: dt.datetime | None
    outcome_note: str | None


class BatchOut(BaseModel):
    """A disposition batch."""

    id: str
    state: str = Field(description="proposed, approved, executing, completed or rejected")
    as_of: dt.datetime
    proposed_by: str
    proposed_at: dt.datetime
    item_count: int
    counts: list[CountOut] = Field(description="the proposed documents by class and action")
    approved_by: str | None
    approved_at: dt.datetime | None
    completed_at: dt.datetime | None
    outcomes: dict[str, int] | None = Field(description="documents by outcome, once completed")
    certificate_id: str | None = Field(description="the certificate of destruction (a declared record)")
    transfer_package: dict[str, Any] | None = Field(description="the transfer package's path and SHA-256")
    note: str | None = Field(description="why it was rejected")


class BatchDetailOut(BatchOut):
    """A batch with the first page of its items."""

    items: list[ItemOut]
    next_after: str | None = Field(description="pass as `after` to GET .../items for the next page")


class ApprovedOut(BatchOut):
    """An approved batch and what happens next."""

    message: str


class BatchItemsPage(BaseModel):
    """A page of a batch's items."""

    items: list[ItemOut]
    next_after: str | None


class BatchListOut(BaseModel):
    """A page of batches."""

    items: list[BatchOut]
    next_cursor: str | None


def _batch(b: DispositionBatch) -> dict:
    summary = b.summary or {}
    transfer = summary.get("transfer")
    return BatchOut(
        id=b.id, state=b.state, as_of=b.as_of, proposed_by=b.proposed_by, proposed_at=b.proposed_at,
        item_count=b.item_count, counts=summary.get("proposed", []), approved_by=b.approved_by,
        approved_at=b.approved_at, completed_at=b.completed_at, outcomes=summary.get("outcomes"),
        certificate_id=b.certificate_id, note=b.note,
        transfer_package={"path": transfer["package"], "sha256": transfer["sha256"]} if transfer else None,
    ).model_dump(mode="json")


def _item(row: ItemRow) -> dict:
    i = row.item
    return ItemOut(document_id=i.document_id, title=row.title, document_type=row.document_type,
                   class_code=row.class_code, action=i.action, due_at=i.due_at, excluded=i.excluded,
                   exclude_reason=i.exclude_reason, excluded_by=i.excluded_by, outcome=i.outcome,
                   outcome_at=i.outcome_at, outcome_note=i.outcome_note).model_dump(mode="json")


def _detail(session: Session, user: User, batch: DispositionBatch) -> dict:
    page = disposition.list_items(session, actor=user, batch_id=batch.id, limit=FIRST_ITEMS)
    return {**_batch(batch), "items": [_item(r) for r in page.items], "next_after": page.next_after}


@router.post("/sweep", status_code=201, response_model=BatchDetailOut,
             responses={200: {"model": SweepOut, "description": "a dry run, or nothing was due"}})
def sweep(user: CurrentUser, body: SweepIn | None = None) -> JSONResponse:
    """Propose a disposition batch of the documents due now and not held (201 with the batch), or with
    `dry_run` count them by class and action (200 with the report). Nothing due: 200, `batch_id` null. A
    repeat proposes nothing twice: proposed documents are pending until the batch is decided."""
    require_records_manager(user)
    dry_run = body is not None and body.dry_run
    with transaction(readonly=dry_run) as session:
        report = disposition.propose(session, actor=user.username, dry_run=dry_run)
        if report.batch_id is None:
            return JSONResponse(SweepOut(**report.as_dict()).model_dump(mode="json"), status_code=200)
        session.flush()
        detail = _detail(session, user, disposition.get_batch(session, actor=user, batch_id=report.batch_id))
    return JSONResponse(detail, status_code=201,
                        headers={"Location": f"/api/v1/disposition/batches/{report.batch_id}"})


@router.get("/batches", response_model=BatchListOut)
def list_batches(
    user: CurrentUser,
    state: Annotated[str | None, Query(pattern=f"^({'|'.join(BATCH_STATES)})$")] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict:
    """Batches newest first, optionally in one state; follow `next_cursor` for more."""
    with transaction(readonly=True) as session:
        page = disposition.list_batches(session, actor=user, state=state, cursor=cursor, limit=limit)
        return {"items": [_batch(b) for b in page.items], "next_cursor": page.next_cursor}


@router.get("/batches/{batch_id}", response_model=BatchDetailOut)
def read(batch_id: str, user: CurrentUser) -> dict:
    """A batch and the first page of its items."""
    with transaction(readonly=True) as session:
        return _detail(session, user, disposition.get_batch(session, actor=user, batch_id=batch_id))


@router.get("/batches/{batch_id}/items", response_model=BatchItemsPage)
def items(batch_id: str, user: CurrentUser, after: Annotated[str | None, Query(max_length=100)] = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    """A batch's items by document id, `limit` at a time after the document id `after`."""
    with transaction(readonly=True) as session:
        page = disposition.list_items(session, actor=user, batch_id=batch_id, after=after, limit=limit)
        return {"items": [_item(r) for r in page.items], "next_after": page.next_after}


@router.post("/batches/{batch_id}/exclude", response_model=BatchDetailOut)
def exclude(batch_id: str, body: ExcludeIn, user: CurrentUser) -> dict:
    """Leave documents out of a proposed batch, with a reason (409 once it is approved or rejected)."""
    with transaction() as session:
        batch = disposition.exclude_items(session, actor=user, batch_id=batch_id, document_ids=body.document_ids,
                                          reason=body.reason)
        session.flush()
        return _detail(session, user, batch)


@router.post("/batches/{batch_id}/approve", status_code=202, response_model=ApprovedOut)
def approve(batch_id: str, user: CurrentUser, body: ApproveIn | None = None) -> JSONResponse:
    """Approve a proposed batch, optionally excluding documents (each with a reason) in the same call; 202:
    the background scheduler carries it out and files its certificate of destruction."""
    exclusions = [e.model_dump() for e in body.exclude] if body is not None else []
    with transaction() as session:
        batch = disposition.approve(session, actor=user, batch_id=batch_id, exclude=exclusions)
        out = {**_batch(batch), "message": EXECUTION.format(id=batch.id)}
    return JSONResponse(out, status_code=202, headers={"Location": f"/api/v1/disposition/batches/{batch_id}"})


@router.post("/batches/{batch_id}/reject", response_model=BatchOut)
def reject(batch_id: str, body: RejectIn, user: CurrentUser) -> dict:
    """Reject a proposed batch with a reason: nothing is destroyed; its documents go to review."""
    with transaction() as session:
        return _batch(disposition.reject(session, actor=user, batch_id=batch_id, reason=body.reason))
