"""Customer profiles: create, change, read and find."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from repository import audit, events
from repository.access import require_role
from repository.customer_validation import ADDRESS_KEYS, PROFILE_KEYS, check_profile, empty_profile
from repository.errors import DuplicateError, InvalidInputError, NotFoundError, PreconditionFailedError
from repository.models import Customer, User
from repository.types import utcnow

# Admins always pass require_role. Authors may register a customer (a letter or document they file may be the
# first thing Postroom hears of one); changing a customer's details is help-desk work.
CREATE_ROLES = ("admin", "helpdesk", "author")
WRITE_ROLES = ("admin", "helpdesk")
UNDELIVERABLE_CLEARED = {"address_undeliverable": False, "undeliverable_reason": None, "undeliverable_at": None}


@dataclass
class CustomerPage:
    """One page of customers and the cursor for the next, if any."""

    items: list[Customer]
    next_cursor: str | None


def profile_of(customer: Customer) -> dict[str, Any]:
    """The customer's profile values, keyed like PROFILE_KEYS."""
    return {key: getattr(customer, key) for key in PROFILE_KEYS}


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The API names of the profile fields whose value differs."""
    return sorted({"address" if k in ADDRESS_KEYS else k for k in PROFILE_KEYS if before[k] != after[k]})


def _duplicate(external_ref: str) -> DuplicateError:
    return DuplicateError(f"a customer with external_ref {external_ref!r} already exists", field="external_ref")


def insert_customer(session: Session, *, actor: User, fields: dict[str, Any], source: str = "api",
                    known_new: bool = False) -> Customer:
    """Check and insert a customer (no role check: callers do that once); `known_new` skips the look-up of the
    external reference for a caller that has just looked (the unique constraint still guards it)."""
    clean = check_profile({**empty_profile(), **fields})
    if not known_new and session.execute(
            select(Customer.id).where(Customer.external_ref == clean["external_ref"])).first():
        raise _duplicate(clean["external_ref"])
    customer = Customer(**clean, address_undeliverable=False, version=1)
    session.add(customer)
    try:
        session.flush()
    except SQLIntegrityError as exc:
        raise _duplicate(clean["external_ref"]) from exc
    given = changed_fields(empty_profile(), clean)
    audit.record(session, actor=actor.username, action="customer.created", object_type="customer",
                 object_id=customer.id, details={"external_ref": customer.external_ref, "fields": given,
                                                 "source": source})
    events.emit(session, events.CUSTOMER_CREATED, {"customer_id": customer.id})
    return customer


def create_customer(session: Session, *, actor: User, **fields: Any) -> Customer:
    """Register a customer; the external reference must be unique, every value valid (one 422 lists them all)."""
    require_role(actor, *CREATE_ROLES)
    return insert_customer(session, actor=actor, fields=fields)


def get_customer(session: Session, *, customer_id: str) -> Customer:
    """The customer with this id; NotFoundError otherwise (every staff member may read customers)."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFoundError(f"customer {customer_id} not found")
    return customer


def lock_customer(session: Session, *, customer_id: str) -> Customer:
    """The customer with this id, read afresh and locked for the rest of the transaction (FOR UPDATE on
    PostgreSQL; on SQLite a writing transaction holds the database's write lock from its start), for a change
    that takes no If-Match: it waits for a concurrent change instead of failing on it. NotFoundError otherwise."""
    customer = session.execute(select(Customer).where(Customer.id == customer_id).with_for_update()
                               .execution_options(populate_existing=True)).scalar_one_or_none()
    if customer is None:
        raise NotFoundError(f"customer {customer_id} not found")
    return customer


def bump(session: Session, customer: Customer, values: dict[str, Any], *, expected_version: int | None = None
         ) -> None:
    """Write values and the next version if the customer is still at `expected_version` (or the version we
    read), else PreconditionFailedError; the loaded object is brought up to date without another query."""
    version = customer.version if expected_version is None else expected_version
    values = {**values, "version": version + 1, "updated_at": utcnow()}
    result = session.execute(update(Customer).where(Customer.id == customer.id, Customer.version == version)
                             .values(**values).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        session.expire(customer)
        raise PreconditionFailedError(f"customer {customer.id} was changed by someone else; fetch it again and "
                                      "retry with its new ETag")
    for key, value in values.items():
        set_committed_value(customer, key, value)


def apply_changes(session: Session, *, actor: User, customer: Customer, changes: dict[str, Any],
                  expected_version: int | None = None, source: str = "api") -> list[str]:
    """Check and write changes to a customer (no role check); returns the changed field names, [] for none.
    A changed postal address clears the undeliverable flag."""
    if expected_version is not None and expected_version != customer.version:
        raise PreconditionFailedError(f"customer {customer.id} is at version {customer.version}, not "
                                      f"{expected_version}; fetch it again and retry with its new ETag")
    before = profile_of(customer)
    after = check_profile({**before, **changes})
    changed = changed_fields(before, after)
    if not changed:
        return []
    if after["external_ref"] != before["external_ref"] and session.execute(
            select(Customer.id).where(Customer.external_ref == after["external_ref"])).first():
        raise _duplicate(after["external_ref"])
    values = {k: after[k] for k in PROFILE_KEYS if after[k] != before[k]}
    cleared = "address" in changed and customer.address_undeliverable
    if cleared:
        values.update(UNDELIVERABLE_CLEARED)
    try:
        bump(session, customer, values, expected_version=expected_version)
    except SQLIntegrityError as exc:
        raise _duplicate(after["external_ref"]) from exc
    details: dict[str, Any] = {"fields": changed, "source": source}
    if cleared:
        details["undeliverable_cleared"] = True
    audit.record(session, actor=actor.username, action="customer.updated", object_type="customer",
                 object_id=customer.id, details=details)
    events.emit(session, events.CUSTOMER_UPDATED, {"customer_id": customer.id, "fields": changed,
                                                   "version": customer.version})
    if cleared:
        events.emit(session, events.CUSTOMER_UNDELIVERABLE_CLEARED, {"customer_id": customer.id})
    return changed


def update_customer(session: Session, *, actor: User, customer_id: str, changes: dict[str, Any],
                    expected_version: int | None) -> Customer:
    """Change some fields (None clears an optional one) if the customer is still at expected_version."""
    require_role(actor, *WRITE_ROLES)
    customer = get_customer(session, customer_id=customer_id)
    unknown = sorted(set(changes) - set(PROFILE_KEYS))
    if unknown:
        raise InvalidInputError(f"not customer fields: {', '.join(unknown)}", field=unknown[0],
                                errors=[{"field": k, "message": "is not a customer field"} for k in unknown])
    apply_changes(session, actor=actor, customer=customer, changes=changes, expected_version=expected_version)
    return customer


def _like(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_customers_page(session: Session, *, q: str | None = None, limit: int = 50, cursor: str | None = None,
                          undeliverable: bool | None = None) -> CustomerPage:
    """Customers whose external reference or name contains q (any case), by name, one page at a time."""
    limit = min(max(limit, 1), 200)
    stmt = select(Customer)
    if q:
        like = _like(q)
        stmt = stmt.where(or_(Customer.external_ref.ilike(like, escape="\\"), Customer.name.ilike(like, escape="\\")))
    if undeliverable is not None:
        stmt = stmt.where(Customer.address_undeliverable.is_(undeliverable))
    if cursor:
        name, last_id = _decode_cursor(cursor)
        stmt = stmt.where(or_(Customer.name > name, and_(Customer.name == name, Customer.id > last_id)))
    rows = list(session.execute(stmt.order_by(Customer.name, Customer.id).limit(limit + 1)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return CustomerPage(rows, _encode_cursor(rows[-1]) if more else None)


def search_customers(session: Session, *, q: str | None = None, limit: int = 50) -> list[Customer]:
    """Customers whose external reference or name contains q (any case), by name."""
    return search_customers_page(session, q=q, limit=limit).items


def _encode_cursor(customer: Customer) -> str:
    return base64.urlsafe_b64encode(json.dumps([customer.name, customer.id]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        name, last_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(name, str) or not isinstance(last_id, str):
            raise TypeError("cursor parts are not text")
        return name, last_id
    except (ValueError, TypeError) as exc:
        raise InvalidInputError("the cursor is not valid; use the next cursor of a previous page",
                                field="cursor") from exc
