"""OAuth2 password flow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form

from repository import identity
from repository.config import get_settings
from repository.db import transaction
from repository.errors import AuthenticationError
from repository.schemas import Token

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/token", response_model=Token)
def token(username: Annotated[str, Form(max_length=150)], password: Annotated[str, Form(max_length=1024)]) -> Token:
    """Exchange a username and password for a bearer token."""
    settings = get_settings()
    with transaction(readonly=True) as session:
        user, ok = identity.check_credentials(session, username=username, password=password)
    with transaction() as session:
        identity.record_login(session, username=username, user=user, succeeded=ok, password=password)
    issued = identity.issue_token(user, settings) if ok else None
    if issued is None:
        raise AuthenticationError("wrong username or password")
    access_token, _expires = issued
    return Token(access_token=access_token, expires_in=settings.token_lifetime_minutes * 60)
