"""Customers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse

from api.deps import CurrentUser
from api.idempotency import idempotent_create
from repository import service
from repository.db import transaction
from repository.models import Customer
from repository.schemas import CustomerIn, CustomerOut

router = APIRouter(prefix="/api/v1/customers", tags=["customers"])


def customer_out(c: Customer) -> CustomerOut:
    """The API shape of a customer."""
    return CustomerOut(id=c.id, external_ref=c.external_ref, name=c.name, created_at=c.created_at)


@router.post("", status_code=201, response_model=CustomerOut)
def create(body: CustomerIn, user: CurrentUser,
           idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Register a customer."""

    def make(session) -> dict:  # noqa: ANN001
        customer = service.create_customer(session, actor=user, external_ref=body.external_ref, name=body.name)
        return customer_out(customer).model_dump(mode="json")

    return idempotent_create(user, idempotency_key, ("POST", "/customers", body.model_dump()), make)


@router.get("", response_model=list[CustomerOut])
def search(user: CurrentUser, q: Annotated[str | None, Query(max_length=200)] = None,
           limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[CustomerOut]:
    """Find customers by external reference or name."""
    with transaction(readonly=True) as session:
        return [customer_out(c) for c in service.search_customers(session, q=q, limit=limit)]


@router.get("/{customer_id}", response_model=CustomerOut)
def get(customer_id: str, user: CurrentUser) -> CustomerOut:
    """One customer."""
    with transaction(readonly=True) as session:
        return customer_out(service.get_customer(session, customer_id=customer_id))
