"""Customers: profiles, consents, the undeliverable flag, and bulk import."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentUser
from api.errors import problem
from api.etags import etag as revision_etag
from api.etags import expected_revision
from api.idempotency import idempotent_create
from api.jobs import import_customer_file
from api.uploads import read_form, stage_body
from repository import service
from repository.access import require_role
from repository.config import get_settings
from repository.content import StagedContent
from repository.db import transaction
from repository.errors import UnsupportedMediaTypeError
from repository.models import Customer, CustomerConsent, User
from repository.schemas import (
    Address,
    ConsentIn,
    ConsentOut,
    CustomerIn,
    CustomerOut,
    CustomerPatch,
    ImportReportOut,
    UndeliverableIn,
)
from repository.service.customers import WRITE_ROLES

router = APIRouter(prefix="/api/v1/customers", tags=["customers"])

RAW_IMPORT_TYPES = ("text/csv", "application/csv", "application/x-ndjson", "application/jsonl", "application/json",
                    "application/x-jsonlines", "application/json-lines")
ADDRESS_FIELDS = {"lines": "address_lines", "city": "city", "region": "region", "postcode": "postcode",
                  "country": "country"}


def consent_out(c: CustomerConsent) -> ConsentOut:
    """The API shape of a consent decision."""
    return ConsentOut(purpose=c.purpose, granted=c.granted, source=c.source, recorded_at=c.recorded_at,
                      recorded_by=c.recorded_by)


def customer_out(c: Customer, consents: list[CustomerConsent]) -> CustomerOut:
    """The API shape of a customer."""
    has_address = bool(c.address_lines or c.city or c.region or c.postcode or c.country)
    address = Address(lines=list(c.address_lines), city=c.city, region=c.region, postcode=c.postcode,
                      country=c.country) if has_address else None
    return CustomerOut(
        id=c.id, external_ref=c.external_ref, name=c.name, salutation=c.salutation, title=c.title, address=address,
        email=c.email, mobile=c.mobile, locale=c.locale, channel_preferences=c.channel_preferences,
        paperless=c.paperless, segment=c.segment, address_undeliverable=c.address_undeliverable,
        undeliverable_reason=c.undeliverable_reason, undeliverable_at=c.undeliverable_at,
        consents=[consent_out(x) for x in consents], version=c.version, created_at=c.created_at,
        updated_at=c.updated_at,
    )


def _full(session: Session, c: Customer) -> CustomerOut:
    return customer_out(c, service.current_consents(session, customer_id=c.id))


def etag(c: Customer) -> str:
    """The customer's entity tag: its version."""
    return revision_etag(c.version)


def _fields(body: CustomerIn | CustomerPatch, *, only_sent: bool) -> dict[str, Any]:
    """The service's flat fields from a request body (an address replaces every address part)."""
    sent = body.model_fields_set if only_sent else set(type(body).model_fields)
    fields = {name: getattr(body, name) for name in sent if name != "address"}
    if "address" in sent:
        address = body.address
        for part, key in ADDRESS_FIELDS.items():
            fields[key] = getattr(address, part) if address is not None else None
    return fields


@router.post("", status_code=201, response_model=CustomerOut)
def create(body: CustomerIn, user: CurrentUser,
           idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Register a customer (admin, helpdesk, author); every bad field is named in one 422."""

    def make(session: Session) -> dict:
        customer = service.create_customer(session, actor=user, **_fields(body, only_sent=False))
        return customer_out(customer, []).model_dump(mode="json")

    def headers(b: dict) -> dict[str, str]:
        return {"Location": f"/api/v1/customers/{b['id']}", "ETag": f'"{b["version"]}"'}

    return idempotent_create(user, idempotency_key, ("POST", "/customers", body.model_dump()), make, headers=headers)


@router.get("", response_model=list[CustomerOut])
def search(
    request: Request,
    response: Response,
    user: CurrentUser,
    q: Annotated[str | None, Query(max_length=200, description="part of the external reference or name")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    undeliverable: Annotated[bool | None, Query(description="only customers whose address is (not) flagged")] = None,
) -> list[CustomerOut]:
    """Find customers by external reference or name (any case), by name; the X-Next-Cursor header (and a Link
    rel=next) gives the next page."""
    with transaction(readonly=True) as session:
        page = service.search_customers_page(session, q=q, limit=limit, cursor=cursor, undeliverable=undeliverable)
        consents = service.current_consents_of(session, customer_ids=[c.id for c in page.items])
        items = [customer_out(c, consents.get(c.id, [])) for c in page.items]
    if page.next_cursor:
        response.headers["X-Next-Cursor"] = page.next_cursor
        response.headers["Link"] = f'<{request.url.include_query_params(cursor=page.next_cursor)}>; rel="next"'
    return items


@router.get("/{customer_id}", response_model=CustomerOut)
def get(customer_id: str, user: CurrentUser, response: Response) -> CustomerOut:
    """One customer with its current consents, and an ETag for PATCH."""
    with transaction(readonly=True) as session:
        customer = service.get_customer(session, customer_id=customer_id)
        response.headers["ETag"] = etag(customer)
        return _full(session, customer)


@router.patch("/{customer_id}", response_model=CustomerOut,
              responses={412: {"description": "changed meanwhile"}, 428: {"description": "If-Match missing"}})
def patch(customer_id: str, body: CustomerPatch, user: CurrentUser, response: Response,
          if_match: Annotated[str | None, Header()] = None) -> Any:
    """Change the fields sent (null clears an optional one); needs If-Match with the ETag from GET (428 without,
    412 when someone changed the customer meanwhile). A new address clears the undeliverable flag."""
    if if_match is None or not if_match.strip():
        return problem(428, "Precondition required", "send If-Match with the customer's ETag (from GET) so that "
                       "nobody's change is overwritten unseen", type_="urn:postroom:problem:precondition-required",
                       instance=f"/api/v1/customers/{customer_id}")
    expected = expected_revision(if_match, "customer")
    with transaction() as session:
        customer = service.update_customer(session, actor=user, customer_id=customer_id,
                                           changes=_fields(body, only_sent=True), expected_version=expected)
        response.headers["ETag"] = etag(customer)
        return _full(session, customer)


@router.post("/{customer_id}/consents", status_code=201, response_model=ConsentOut)
def add_consent(customer_id: str, body: ConsentIn, user: CurrentUser, response: Response) -> ConsentOut:
    """Record a consent decision (the history is kept; the newest per purpose is current)."""
    with transaction() as session:
        consent = service.record_consent(session, actor=user, customer_id=customer_id, purpose=body.purpose,
                                         granted=body.granted, source=body.source)
        response.headers["ETag"] = etag(service.get_customer(session, customer_id=customer_id))
        return consent_out(consent)


@router.get("/{customer_id}/consents", response_model=list[ConsentOut])
def consents(customer_id: str, user: CurrentUser) -> list[ConsentOut]:
    """Every consent decision of the customer, oldest first."""
    with transaction(readonly=True) as session:
        return [consent_out(c) for c in service.consent_history(session, customer_id=customer_id)]


@router.post("/{customer_id}/undeliverable", response_model=CustomerOut)
def mark_undeliverable(customer_id: str, body: UndeliverableIn, user: CurrentUser, response: Response) -> CustomerOut:
    """Flag the customer's postal address as undeliverable, so the output subsystem stops printing to it."""
    with transaction() as session:
        customer = service.mark_undeliverable(session, actor=user, customer_id=customer_id, reason=body.reason)
        response.headers["ETag"] = etag(customer)
        return _full(session, customer)


@router.delete("/{customer_id}/undeliverable", response_model=CustomerOut)
def clear_undeliverable(customer_id: str, user: CurrentUser, response: Response) -> CustomerOut:
    """Take the undeliverable flag off (the address was confirmed good)."""
    with transaction() as session:
        customer = service.clear_undeliverable(session, actor=user, customer_id=customer_id)
        response.headers["ETag"] = etag(customer)
        return _full(session, customer)


def _run_import(user: User, staged: StagedContent, filename: str | None, media_type: str | None,
                fmt: str | None) -> dict:
    with staged.open() as stream:
        report = import_customer_file(stream, actor=user, fmt=fmt, filename=filename, media_type=media_type)
    return report.as_dict()


@router.post("/import", response_model=ImportReportOut)
async def import_customers(
    request: Request,
    user: CurrentUser,
    format: Annotated[str | None, Query(pattern="^(csv|jsonl|json)$",
                                        description="csv, jsonl or json (an array; else guessed)")] = None,
) -> dict:
    """Upsert customers from a CSV (header row), JSON Lines or JSON array file, sent as multipart `file` or as a
    text/csv, application/x-ndjson or application/json body (admin, helpdesk). Bad rows are reported with their line
    numbers and the good ones imported; sending the same file again changes nothing."""
    require_role(user, *WRITE_ROLES)
    settings = get_settings()
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "multipart/form-data":
        form = await read_form(request, max_bytes=settings.max_upload_bytes, tmp_dir=settings.tmp_dir)
        staged, filename, declared = form.file, form.file.filename or None, None
    elif media in RAW_IMPORT_TYPES:
        staged = await stage_body(request, settings.max_upload_bytes, settings.tmp_dir)
        filename, declared = None, media
    else:
        raise UnsupportedMediaTypeError(
            f"send the file as multipart/form-data (part 'file'), or as a body of type {', '.join(RAW_IMPORT_TYPES)}"
            f"; not {media or 'without a Content-Type'}")
    try:
        return await run_in_threadpool(_run_import, user, staged, filename, declared, format)
    finally:
        staged.release()
