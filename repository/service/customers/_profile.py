"""The customer registry that documents link to."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.orm import Session

from repository import audit, events
from repository.errors import DuplicateError, InvalidInputError, NotFoundError
from repository.models import Customer, User


def create_customer(session: Session, *, actor: User, external_ref: str, name: str) -> Customer:
    """Register a customer; the external reference must be unique."""
    external_ref, name = external_ref.strip(), name.strip()
    if not external_ref or len(external_ref) > 200:
        raise InvalidInputError("external_ref must be 1-200 characters")
    if not name or len(name) > 300:
        raise InvalidInputError("name must be 1-300 characters")
    if session.execute(select(Customer.id).where(Customer.external_ref == external_ref)).first():
        raise DuplicateError(f"a customer with external_ref {external_ref!r} already exists")
    customer = Customer(external_ref=external_ref, name=name)
    session.add(customer)
    try:
        session.flush()
    except SQLIntegrityError as exc:
        raise DuplicateError(f"a customer with external_ref {external_ref!r} already exists") from exc
    audit.record(session, actor=actor.username, action="customer.created", object_type="customer",
                 object_id=customer.id, details={"external_ref": external_ref})
    events.emit(session, events.CUSTOMER_CREATED, {"customer_id": customer.id})
    return customer


def get_customer(session: Session, *, customer_id: str) -> Customer:
    """The customer with this id; NotFoundError otherwise."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFoundError(f"customer {customer_id} not found")
    return customer


def search_customers(session: Session, *, q: str | None = None, limit: int = 50) -> list[Customer]:
    """Customers whose external reference or name contains q, by name."""
    stmt = select(Customer).order_by(Customer.name, Customer.id).limit(min(max(limit, 1), 200))
    if q:
        like = f"%{q.replace('%', '').replace('_', '')}%"
        stmt = stmt.where(or_(Customer.external_ref.ilike(like), Customer.name.ilike(like)))
    return list(session.execute(stmt).scalars())
