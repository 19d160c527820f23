"""Staff users, argon2 password hashes and signed bearer tokens."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.orm import Session

from repository import audit, events
from repository.config import Settings
from repository.errors import AuthenticationError, DuplicateError, InvalidInputError
from repository.models import User
from repository.types import utcnow

ROLES = ("admin", "author", "approver", "helpdesk", "records_manager", "complaint_handler", "auditor")
_hasher = PasswordHasher()
# Verifying against this when the user does not exist keeps the timing of a failed login the same.
_DUMMY_HASH = _hasher.hash("postroom-dummy-password")


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether the password matches the stored hash; with no hash (no such account) it costs the same and fails."""
    try:
        return bool(_hasher.verify(stored or _DUMMY_HASH, password)) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether a stored hash uses outdated parameters (rehash it at the next successful login)."""
    return _hasher.check_needs_rehash(stored)


def create_user(session: Session, *, username: str, password: str, roles: list[str], actor: str) -> User:
    """Create a staff user; roles must come from ROLES, passwords must be at least 8 characters."""
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise InvalidInputError(f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(ROLES)}")
    if not roles:
        raise InvalidInputError("a user needs at least one role")
    if len(password) < 8:
        raise InvalidInputError("the password must be at least 8 characters long")
    if not username or len(username) > 150 or not username.isprintable() or " " in username:
        raise InvalidInputError("the username must be 1-150 printable characters without spaces")
    if session.execute(select(User.id).where(User.username == username)).first():
        raise DuplicateError(f"a user named {username!r} already exists")
    user = User(username=username, password_hash=hash_password(password), roles=sorted(set(roles)))
    session.add(user)
    try:
        session.flush()
    except SQLIntegrityError as exc:
        raise DuplicateError(f"a user named {username!r} already exists") from exc
    audit.record(session, actor=actor, action="user.created", object_type="user", object_id=user.id,
                 details={"username": username, "roles": user.roles})
    events.emit(session, events.USER_CREATED, {"user_id": user.id})
    return user


def username_of(session: Session, user_id: str | None) -> str | None:
    """The username for a user id (the id itself if the user is gone), None for None."""
    if user_id is None:
        return None
    user = session.get(User, user_id)
    return user.username if user else user_id


def check_credentials(session: Session, *, username: str, password: str) -> tuple[User | None, bool]:
    """Look the user up and verify the password, only reading (so a slow hash holds no write lock);
    returns (user or None, whether the login succeeds). Unknown users cost the same hash."""
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    ok = verify_password(user.password_hash if user else None, password)
    return user, bool(ok and user is not None and user.active)


def record_login(session: Session, *, username: str, user: User | None, succeeded: bool, password: str) -> None:
    """Audit a login or failed login (never the password) and upgrade an outdated hash."""
    if not succeeded or user is None:
        audit.record(session, actor=username[:150] or "anonymous", action="auth.login_failed",
                     object_type="user", object_id=user.id if user else None)
        return
    if needs_rehash(user.password_hash):
        session.get(User, user.id).password_hash = hash_password(password)
    audit.record(session, actor=user.username, action="auth.login", object_type="user", object_id=user.id)


def authenticate(session: Session, *, username: str, password: str) -> User | None:
    """The active user with these credentials, or None; both outcomes are audited, in one transaction."""
    user, ok = check_credentials(session, username=username, password=password)
    record_login(session, username=username, user=user, succeeded=ok, password=password)
    return user if ok else None


def token_secret(settings: Settings) -> bytes:
    """The secret that signs bearer tokens (created on first use, kept apart from the data)."""
    return _read_or_create_secret(settings.resolved_token_secret_path)


@lru_cache(maxsize=8)
def _read_or_create_secret(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".token-secret-")  # created 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # first writer wins; others read what it wrote
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip().encode()


def issue_token(user: User, settings: Settings) -> tuple[str, dt.datetime]:
    """A signed bearer token for the user and its expiry time."""
    expires = utcnow() + dt.timedelta(minutes=settings.token_lifetime_minutes)
    claims = {"sub": user.id, "exp": expires, "iat": utcnow(), "jti": secrets.token_hex(8)}
    return jwt.encode(claims, token_secret(settings), algorithm="HS256"), expires


def user_from_token(session: Session, *, token: str, settings: Settings) -> User:
    """The active user a valid token names; AuthenticationError otherwise."""
    try:
        claims = jwt.decode(token, token_secret(settings), algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationError("the token has expired; request a new one at /api/v1/auth/token") from exc
    except jwt.PyJWTError as exc:
        raise AuthenticationError("the token is not valid") from exc
    user = session.get(User, claims["sub"])
    if user is None or not user.active:
        raise AuthenticationError("the token's user no longer exists or is disabled")
    return user
