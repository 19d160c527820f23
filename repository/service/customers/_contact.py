"""Consent records and the undeliverable-address flag of a customer."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from repository import audit, events
from repository.access import require_role
from repository.customer_validation import flag, text
from repository.errors import InvalidInputError
from repository.models import Customer, CustomerConsent, User
from repository.service.customers._profile import (
    UNDELIVERABLE_CLEARED,
    WRITE_ROLES,
    bump,
    get_customer,
    lock_customer,
)
from repository.types import utcnow

_PURPOSE = re.compile(r"^[a-z][a-z0-9._-]{0,99}$")


def record_consent(session: Session, *, actor: User, customer_id: str, purpose: str, granted: bool,
                   source: str) -> CustomerConsent:
    """Append a consent decision (the newest one per purpose is the customer's current answer). It needs no
    If-Match: the customer row is locked, so a change made at the same time is waited for, never a 412."""
    require_role(actor, *WRITE_ROLES)
    customer = lock_customer(session, customer_id=customer_id)
    errors = []
    if not isinstance(purpose, str) or not _PURPOSE.match(purpose.strip()):
        errors.append({"field": "purpose", "message": "must be 1-100 lower-case letters, digits, '.', '_' or '-', "
                                                      "starting with a letter (like marketing-email)"})
    try:
        source_text = text(source, field="source", max_length=100, required=True)
    except InvalidInputError as exc:
        errors += exc.extra["errors"]
    try:
        if granted is None:
            raise InvalidInputError("granted: is required", errors=[{"field": "granted", "message": "is required"}])
        granted = flag(granted, field="granted")
    except InvalidInputError as exc:
        errors += exc.extra["errors"]
    if errors:
        raise InvalidInputError("; ".join(f"{e['field']}: {e['message']}" for e in errors), field=errors[0]["field"],
                                errors=errors)
    consent = CustomerConsent(customer_id=customer.id, purpose=purpose.strip(), granted=granted,
                              recorded_at=utcnow(), source=source_text, recorded_by=actor.username)
    session.add(consent)
    session.flush()
    bump(session, customer, {})
    details = {"purpose": consent.purpose, "granted": granted, "source": consent.source}
    audit.record(session, actor=actor.username, action="customer.consent_recorded", object_type="customer",
                 object_id=customer.id, details=details)
    events.emit(session, events.CUSTOMER_CONSENT_RECORDED, {"customer_id": customer.id, **details})
    return consent


def current_consents(session: Session, *, customer_id: str) -> list[CustomerConsent]:
    """The newest consent decision for each purpose, by purpose."""
    return current_consents_of(session, customer_ids=[customer_id]).get(customer_id, [])


def current_consents_of(session: Session, *, customer_ids: list[str]) -> dict[str, list[CustomerConsent]]:
    """current_consents for several customers in one query: customer id -> decisions by purpose."""
    if not customer_ids:
        return {}
    newest = (select(func.max(CustomerConsent.id)).where(CustomerConsent.customer_id.in_(customer_ids))
              .group_by(CustomerConsent.customer_id, CustomerConsent.purpose))
    stmt = select(CustomerConsent).where(CustomerConsent.id.in_(newest)).order_by(CustomerConsent.purpose)
    found: dict[str, list[CustomerConsent]] = {}
    for consent in session.execute(stmt).scalars():
        found.setdefault(consent.customer_id, []).append(consent)
    return found


def consent_history(session: Session, *, customer_id: str) -> list[CustomerConsent]:
    """Every consent decision of the customer, oldest first."""
    get_customer(session, customer_id=customer_id)
    stmt = select(CustomerConsent).where(CustomerConsent.customer_id == customer_id).order_by(CustomerConsent.id)
    return list(session.execute(stmt).scalars())


def mark_undeliverable(session: Session, *, actor: User, customer_id: str, reason: str) -> Customer:
    """Flag the customer's postal address as undeliverable (mail came back), for the output subsystem; a flag
    already set keeps its first reason and time. Setting a new address clears it."""
    require_role(actor, *WRITE_ROLES)
    customer = lock_customer(session, customer_id=customer_id)
    reason_text = text(reason, field="reason", max_length=500, required=True)
    if not customer.address_lines:
        raise InvalidInputError(f"customer {customer_id} has no postal address to mark undeliverable",
                                field="address")
    if customer.address_undeliverable:
        return customer
    bump(session, customer, {"address_undeliverable": True, "undeliverable_reason": reason_text,
                             "undeliverable_at": utcnow()})
    audit.record(session, actor=actor.username, action="customer.undeliverable", object_type="customer",
                 object_id=customer.id, details={"reason": reason_text})
    events.emit(session, events.CUSTOMER_UNDELIVERABLE, {"customer_id": customer.id, "reason": reason_text})
    return customer


def clear_undeliverable(session: Session, *, actor: User, customer_id: str) -> Customer:
    """Take the undeliverable flag off (the address was confirmed); nothing happens when it is not set."""
    require_role(actor, *WRITE_ROLES)
    customer = lock_customer(session, customer_id=customer_id)
    if not customer.address_undeliverable:
        return customer
    bump(session, customer, dict(UNDELIVERABLE_CLEARED))
    audit.record(session, actor=actor.username, action="customer.undeliverable_cleared", object_type="customer",
                 object_id=customer.id)
    events.emit(session, events.CUSTOMER_UNDELIVERABLE_CLEARED, {"customer_id": customer.id})
    return customer
