"""Customer portal: staff invite and disable a customer's portal account; the customer activates it, signs in for a
portal bearer token and reads the letters published to the portal.

Staff endpoints take staff tokens (admin, helpdesk); /api/v1/portal/* takes only portal tokens (the two kinds are
signed with different keys, so each side answers the other's token 401). Activation codes and tokens are shown once
and answered with Cache-Control: no-store.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentPortalCustomer, CurrentUser
from api.errors import register_error_mapping
from api.routers.letters import NO_STORE
from output.service import portal as inbox
from repository import portal_identity
from repository.config import get_settings
from repository.db import transaction
from repository.errors import AuthenticationError
from repository.portal_identity import PortalAccountLockedError
from repository.portal_models import PortalAccount
from repository.schemas import Token

router = APIRouter(tags=["portal"])
register_error_mapping([(PortalAccountLockedError, 429)])

ACCOUNT = "/api/v1/customers/{customer_id}/portal-account"
PORTAL = "/api/v1/portal"


class InvitationIn(BaseModel):
    """Whom to invite: the login email defaults to the customer's email address."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(None, min_length=3, max_length=320)


class PortalAccountOut(BaseModel):
    """A customer's portal account as staff see it (never a password or code)."""

    id: str
    customer_id: str
    email: str
    status: str
    activation_expires_at: dt.datetime | None
    locked_until: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    activated_at: dt.datetime | None
    last_login_at: dt.datetime | None
    disabled_at: dt.datetime | None


class InvitationOut(PortalAccountOut):
    """The account and its one-time activation code; only the code's hash is kept, so this is the only copy."""

    activation_code: str
    activation_url: str


class ActivationIn(BaseModel):
    """The code from the invitation and the password to set."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=200)
    password: str = Field(max_length=portal_identity.MAX_PASSWORD)


class ActivatedOut(BaseModel):
    """The activated login."""

    email: str
    status: str


def account_out(a: PortalAccount) -> PortalAccountOut:
    """The API shape of a portal account."""
    return PortalAccountOut(id=a.id, customer_id=a.customer_id, email=a.email, status=a.status,
                            activation_expires_at=a.activation_expires_at, locked_until=a.locked_until,
                            created_at=a.created_at, updated_at=a.updated_at, activated_at=a.activated_at,
                            last_login_at=a.last_login_at, disabled_at=a.disabled_at)


@router.post(ACCOUNT, status_code=201, response_model=InvitationOut, tags=["customers"])
def invite(customer_id: str, user: CurrentUser, response: Response, body: InvitationIn | None = None) -> InvitationOut:
    """Invite the customer to the portal (admin, helpdesk): creates the account, or renews the invitation of one
    not active, with a one-time activation code valid for POSTROOM_PORTAL_ACTIVATION_HOURS; 409 when active."""
    with transaction() as session:
        invitation = portal_identity.invite(session, actor=user, customer_id=customer_id, settings=get_settings(),
                                            email=body.email if body else None)
        out = InvitationOut(**account_out(invitation.account).model_dump(), activation_code=invitation.code,
                            activation_url=invitation.url)
    response.headers.update(NO_STORE)
    return out


@router.get(ACCOUNT, response_model=PortalAccountOut, tags=["customers"])
def read_account(customer_id: str, user: CurrentUser) -> PortalAccountOut:
    """The customer's portal account: status, lockout, last sign-in."""
    with transaction(readonly=True) as session:
        return account_out(portal_identity.get_account(session, customer_id=customer_id))


@router.delete(ACCOUNT, status_code=204, tags=["customers"])
def disable(customer_id: str, user: CurrentUser) -> Response:
    """Disable the customer's portal account (admin, helpdesk): its tokens stop working at once."""
    with transaction() as session:
        portal_identity.disable(session, actor=user, customer_id=customer_id)
    return Response(status_code=204)


@router.post(f"{PORTAL}/activate", response_model=ActivatedOut)
def activate(body: ActivationIn) -> ActivatedOut:
    """Set the password with the invitation's activation code (8 characters at least); the code works once."""
    with transaction() as session:
        account = portal_identity.activate(session, code=body.code, password=body.password)
        return ActivatedOut(email=account.email, status=account.status)


@router.post(f"{PORTAL}/auth/token", response_model=Token)
def token(response: Response, username: Annotated[str, Form(max_length=320, description="the login email")],
          password: Annotated[str, Form(max_length=portal_identity.MAX_PASSWORD)]) -> Token:
    """Exchange the login email and password for a portal bearer token; repeated failures lock the account (429)."""
    settings = get_settings()
    with transaction(readonly=True) as session:
        check = portal_identity.check_login(session, email=username, password=password)
    with transaction() as session:
        result = portal_identity.record_login(session, check=check, password=password, settings=settings)
        issued = portal_identity.issue_token(result.account, settings) if result.account is not None else None
    if result.locked_until is not None:
        raise portal_identity.locked_error(result.locked_until)
    if issued is None:
        raise AuthenticationError("wrong email or password")
    response.headers.update(NO_STORE)
    return Token(access_token=issued[0], expires_in=settings.portal_token_lifetime_minutes * 60)


@router.get(f"{PORTAL}/letters", response_model=inbox.InboxPage)
def letters(customer: CurrentPortalCustomer, cursor: Annotated[str | None, Query(max_length=500)] = None,
            limit: Annotated[int, Query(ge=1, le=inbox.MAX_PAGE)] = 50) -> inbox.InboxPage:
    """The customer's letters published to the portal, newest first; follow next_cursor for more."""
    with transaction(readonly=True) as session:
        return inbox.list_inbox(session, customer_id=customer.customer_id, cursor=cursor, limit=limit)


@router.get(f"{PORTAL}/letters/{{letter_id}}", response_model=inbox.InboxLetter)
def letter(letter_id: str, customer: CurrentPortalCustomer) -> inbox.InboxLetter:
    """One letter of the customer's inbox; 404 for any other."""
    with transaction(readonly=True) as session:
        return inbox.get_inbox_letter(session, customer_id=customer.customer_id, letter_id=letter_id)


@router.get(f"{PORTAL}/letters/{{letter_id}}/pdf")
def pdf(letter_id: str, customer: CurrentPortalCustomer) -> StreamingResponse:
    """The letter's archived PDF as sent, streamed; the first time marks the letter opened (read)."""
    with transaction(readonly=True) as session:
        item, version, stream = inbox.open_pdf(session, customer_id=customer.customer_id, letter_id=letter_id)
        headers = {"Content-Length": str(version.size), "ETag": f'"{version.sha256}"', **NO_STORE,
                   "Content-Disposition": f"inline; filename*=UTF-8''{quote(item.reference)}.pdf"}
    if not item.read:
        with transaction() as session:
            inbox.mark_opened(session, letter_id=item.id)
    return StreamingResponse(stream, media_type="application/pdf", headers=headers)
