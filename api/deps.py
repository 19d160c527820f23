"""Request dependencies: the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer

from repository import identity, portal_identity
from repository.config import get_settings
from repository.db import transaction
from repository.errors import AuthenticationError
from repository.models import User
from repository.portal_identity import PortalPrincipal

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
portal_oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/portal/auth/token", scheme_name="PortalBearer",
                                     auto_error=False)


def current_user(token: Annotated[str | None, Depends(oauth2)]) -> User:
    """The user named by the bearer token; 401 without a valid one."""
    if not token:
        raise AuthenticationError("this needs a bearer token; get one from POST /api/v1/auth/token")
    with transaction(readonly=True) as session:
        user = identity.user_from_token(session, token=token, settings=get_settings())
        session.expunge(user)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def current_portal_customer(token: Annotated[str | None, Depends(portal_oauth2)]) -> PortalPrincipal:
    """The customer named by a portal bearer token, while the account is active; 401 otherwise (staff tokens too)."""
    if not token:
        raise AuthenticationError("this needs a portal bearer token; get one from POST /api/v1/portal/auth/token")
    with transaction(readonly=True) as session:
        return portal_identity.principal_from_token(session, token=token, settings=get_settings())


CurrentPortalCustomer = Annotated[PortalPrincipal, Depends(current_portal_customer)]
