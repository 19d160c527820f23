"""Erasure requests (GDPR Art. 17): a records manager asks to erase a customer's documents; the answer reports
what was erased and what is kept, why and until when. Erasure requests are invisible to other roles (404)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Body, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.deps import CurrentUser
from api.idempotency import idempotent_create
from records.models import ErasureRequest
from records.service import erasure
from repository.db import transaction
from repository.service.destruction import delete_blobs

router = APIRouter(tags=["records"])


class ErasureIn(BaseModel):
    """An erasure request's optional reference (the customer's ticket or letter)."""

    model_config = ConfigDict(extra="forbid")
    reference: str | None = Field(default=None, max_length=200)


class ErasedOut(BaseModel):
    """A document erased now."""

    document_id: str
    type: str


class KeptOut(BaseModel):
    """A document kept, restricted to records managers, and why; it is erased when `until` has passed (and,
    under a hold, once every hold on it is released)."""

    document_id: str
    type: str | None = None
    reason: str  # legal_hold | legal_obligation | retention
    until: dt.datetime | None
    holds: list[str]
    legal_basis: str | None


class ErasureSummaryOut(BaseModel):
    """An erasure request and its counts."""

    id: str
    customer_id: str
    reference: str | None
    requested_by: str
    requested_at: dt.datetime
    erased_count: int
    kept_count: int


class ErasureOut(ErasureSummaryOut):
    """An erasure request and its full report."""

    erased: list[ErasedOut]
    kept: list[KeptOut]


def _summary(request: ErasureRequest) -> dict:
    return {"id": request.id, "customer_id": request.customer_id, "reference": request.reference,
            "requested_by": request.requested_by, "requested_at": request.requested_at,
            "erased_count": request.erased, "kept_count": request.kept}


def erasure_out(request: ErasureRequest) -> ErasureOut:
    """The API shape of an erasure request with its report."""
    report = request.report or {}
    return ErasureOut(**_summary(request), erased=report.get("erased", []), kept=report.get("kept", []))


def _location(body: dict) -> dict[str, str]:
    return {"Location": f"/api/v1/records/erasures/{body['id']}"}


@router.post("/api/v1/customers/{customer_id}/erasure", status_code=201, response_model=ErasureOut)
def request_erasure(customer_id: str, user: CurrentUser, body: Annotated[ErasureIn | None, Body()] = None,
                    idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Erase the customer's documents that may go now and keep the rest restricted until their retention ends
    (records managers); 201 with the report. Honours Idempotency-Key."""
    reference = body.reference if body is not None else None
    blob_keys: list[str] = []

    def make(session: Session) -> dict:
        result = erasure.request_erasure(session, actor=user, customer_id=customer_id, reference=reference)
        blob_keys[:] = result.blob_keys
        return erasure_out(result.request).model_dump(mode="json")

    response = idempotent_create(user, idempotency_key, ("POST", f"/customers/{customer_id}/erasure", reference),
                                 make, headers=_location)
    # The destruction has committed; a replayed answer (this key's earlier request did it) deletes nothing.
    if blob_keys and "Idempotent-Replayed" not in response.headers:
        delete_blobs(blob_keys)
    return response


@router.get("/api/v1/records/erasures/{erasure_id}", response_model=ErasureOut)
def read(erasure_id: str, user: CurrentUser) -> ErasureOut:
    """One erasure request with its report (records managers)."""
    with transaction(readonly=True) as session:
        return erasure_out(erasure.get_erasure(session, actor=user, erasure_id=erasure_id))


@router.get("/api/v1/customers/{customer_id}/erasures", response_model=list[ErasureSummaryOut])
def list_for_customer(customer_id: str, user: CurrentUser) -> list[ErasureSummaryOut]:
    """A customer's erasure requests, newest first, with their counts (records managers)."""
    with transaction(readonly=True) as session:
        return [ErasureSummaryOut(**_summary(r))
                for r in erasure.list_erasures(session, actor=user, customer_id=customer_id)]
