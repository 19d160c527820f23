"""Full-text and metadata search over everything the caller may read."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel

from api.deps import CurrentUser
from repository.db import transaction
from search import service
from search.backend import Hit

router = APIRouter(prefix="/api/v1", tags=["search"])


class HitOut(BaseModel):
    """One matching document."""

    document_id: str
    title: str
    score: float
    snippet: str  # HTML-escaped text with the matches in <mark>…</mark>
    # How the text was read: ok, truncated (cut at the extraction limit), or found by title and metadata only:
    # empty (no text, a scan), failed, too_large, unsupported; text_error says why.
    text_status: str
    text_error: str | None = None


def hit_out(hit: Hit) -> HitOut:
    """The API shape of a hit."""
    return HitOut(document_id=hit.document_id, title=hit.title, score=hit.score, snippet=hit.snippet,
                  text_status=hit.text_status, text_error=hit.text_error)


class SearchOut(BaseModel):
    """A page of search results."""

    total: int
    hits: list[HitOut]
    facets: dict[str, dict[str, int]]
    next_cursor: str | None


@router.get("/search", response_model=SearchOut)
def search(request: Request, user: CurrentUser,
           q: Annotated[str | None, Query(max_length=1000, description='words, "phrases", AND/OR/NOT, prefix*')] = None,
           document_type: str | None = None, customer_id: str | None = None,
           from_: Annotated[AwareDatetime | None, Query(alias="from")] = None,
           to: AwareDatetime | None = None,
           sort: Literal["relevance", "newest", "oldest"] = "relevance",
           cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 20,
           facets: bool = True) -> SearchOut:
    """Search documents by text and metadata; filter on `meta.<key>=<value>` as well."""
    meta = {k[5:]: v for k, v in request.query_params.items() if k.startswith("meta.")}
    with transaction(readonly=True) as session:
        page = service.search(session, actor=user, q=q, document_type=document_type, customer_id=customer_id,
                              created_from=from_, created_to=to, meta=meta, sort=sort, cursor=cursor, limit=limit,
                              facets=facets)
    return SearchOut(total=page.total, facets=page.facets, next_cursor=page.next_cursor,
                     hits=[hit_out(h) for h in page.hits])
