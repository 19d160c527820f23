"""Request dependencies: the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer

from repository import identity
from repository.config import get_settings
from repository.db import transaction
from repository.errors import AuthenticationError
from repository.models import User

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def current_user(token: Annotated[str | None, Depends(oauth2)]) -> User:
    """The user named by the bearer token; 401 without a valid one."""
    if not token:
        raise AuthenticationError("this needs a bearer token; get one from POST /api/v1/auth/token")
    with transaction(readonly=True) as session:
        user = identity.user_from_token(session, token=token, settings=get_settings())
        session.expunge(user)
    return user


CurrentUser = Annotated[User, Depends(current_user)]
