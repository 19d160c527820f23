"""A customer's history: documents, letters and delivery events on one timeline, for the help desk."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import AwareDatetime, BaseModel

from api.deps import CurrentUser
from repository.db import transaction
from search import history

router = APIRouter(prefix="/api/v1/customers", tags=["history"])

Kind = Literal["document", "letter", "delivery", "complaint"]


class HistoryItemOut(BaseModel):
    """One entry of the timeline."""

    id: int
    at: dt.datetime
    kind: str  # document | letter | delivery | complaint
    subject_type: str  # document | letter | dispatch (| complaint)
    subject_id: str
    document_id: str | None  # GET /api/v1/documents/{document_id} opens it
    title: str
    summary: str
    channel: str | None
    state: str | None  # a delivery's kind (sent, delivered, bounced, ...), a document's state
    details: dict[str, Any]


class HistoryOut(BaseModel):
    """A page of a customer's history, newest first."""

    items: list[HistoryItemOut]
    next_cursor: str | None


@router.get("/{customer_id}/history", response_model=HistoryOut)
def customer_history(
    customer_id: str, request: Request, response: Response, user: CurrentUser,
    kind: Annotated[list[Kind] | None, Query(description="only these kinds (repeatable)")] = None,
    q: Annotated[str | None, Query(max_length=1000, description='words, "phrases", AND/OR/NOT, prefix*')] = None,
    from_: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    to: AwareDatetime | None = None,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> HistoryOut:
    """Everything that happened to the customer that the caller may see, newest first; `next_cursor` (and a
    Link rel=next) gives the next page."""
    with transaction(readonly=True) as session:
        page = history.customer_history(session, actor=user, customer_id=customer_id, kinds=kind, q=q,
                                        at_from=from_, at_to=to, cursor=cursor, limit=limit)
    if page.next_cursor:
        response.headers["Link"] = f'<{request.url.include_query_params(cursor=page.next_cursor)}>; rel="next"'
    return HistoryOut(items=[HistoryItemOut(**vars(i)) for i in page.items], next_cursor=page.next_cursor)
