"""Customer portal accounts: invitations with one-time activation codes, activation, sign-in with a lockout after
failed attempts, customer bearer tokens, and disabling.

Decisions:
- Customer tokens are signed with a key derived from the staff token secret and carry `typ: portal` and their own
  audience: a staff endpoint cannot verify one, a portal endpoint cannot verify a staff token, whatever the claims.
- Every request loads the account: a token works only while the account is active and its generation matches the
  account's, which disabling (and activating again) raises, so a disabled account's tokens stop at once.
- Only the SHA-256 of an activation code is stored (the code has 192 random bits, so a fast hash is enough); a new
  invitation replaces the old code, activating consumes it.
- N failed sign-ins in a row lock the account for M minutes (POSTROOM_PORTAL_MAX_FAILED_LOGINS,
  POSTROOM_PORTAL_LOCKOUT_MINUTES); while it is locked no password is checked at all. The answer says it is locked
  (429 with Retry-After): that tells a guesser the address has an account, but a locked-out customer must know why.
- Codes, passwords and tokens never reach the audit trail, the outbox or a log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass

import jwt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.orm import Session

from repository import audit, customer_validation, events
from repository.access import require_role
from repository.config import Settings
from repository.errors import (
    AuthenticationError,
    DuplicateError,
    InvalidInputError,
    NotFoundError,
    RepositoryError,
)

# The staff hasher, its timing dummy and the token secret are shared on purpose: one argon2 policy, one secret file.
from repository.identity import hash_password, needs_rehash, token_secret, verify_password
from repository.models import User
from repository.portal_models import ACTIVE, DISABLED, INVITED, PortalAccount
from repository.service.customers import WRITE_ROLES, get_customer
from repository.types import new_id, utcnow

TOKEN_TYPE = "portal"  # noqa: S105 (the token kind, not a secret)
AUDIENCE = "postroom-portal"
MIN_PASSWORD, MAX_PASSWORD = 8, 1024
ACCOUNT_INVITED = "portal_account.invited"
ACCOUNT_ACTIVATED = "portal_account.activated"
ACCOUNT_DISABLED = "portal_account.disabled"
ACCOUNT_LOCKED = "portal_account.locked"
LOGIN, LOGIN_FAILED = "portal_account.login", "portal_account.login_failed"


class PortalAccountNotFoundError(NotFoundError):
    """The customer has no portal account."""

    title = "Portal account not found"


class ActivationCodeError(InvalidInputError):
    """The activation code is unknown, used already, or expired."""

    title = "Activation code not valid"


class PortalAccountLockedError(RepositoryError):
    """Too many failed sign-ins: the account is locked for `retry_after` seconds (HTTP 429)."""

    title = "Too many failed sign-ins"


@dataclass(frozen=True)
class Invitation:
    """A new activation code for an account; the code is shown once and only its hash is kept."""

    account: PortalAccount
    code: str
    url: str


@dataclass(frozen=True)
class PortalPrincipal:
    """The customer a valid portal token speaks for."""

    account_id: str
    customer_id: str
    email: str


@dataclass(frozen=True)
class LoginCheck:
    """What a read-only look at a sign-in found (see check_login)."""

    email: str
    account_id: str | None
    password_ok: bool
    locked_until: dt.datetime | None


@dataclass(frozen=True)
class LoginResult:
    """The account when the sign-in succeeded; else when the account is locked until, if it is."""

    account: PortalAccount | None
    locked_until: dt.datetime | None


def login_email(value: str) -> str:
    """The login form of an address: valid syntax, all lower case (logins are unique regardless of case)."""
    return customer_validation.email(value).lower()


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _actor(email: str) -> str:
    return f"portal:{email}"[:150]


def activation_url(settings: Settings, code: str) -> str:
    """Where the customer activates; the code is in the fragment, so it never reaches a server's access log."""
    return f"{settings.public_base_url.rstrip('/')}/portal/activate#code={code}"


def get_account(session: Session, *, customer_id: str, lock: bool = False) -> PortalAccount:
    """The portal account of a customer; PortalAccountNotFoundError when there is none."""
    get_customer(session, customer_id=customer_id)
    stmt = select(PortalAccount).where(PortalAccount.customer_id == customer_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    account = session.execute(stmt).scalar_one_or_none()
    if account is None:
        raise PortalAccountNotFoundError(f"customer {customer_id} has no portal account")
    return account


def invite(session: Session, *, actor: User, customer_id: str, settings: Settings,
           email: str | None = None) -> Invitation:
    """Create the customer's portal account (or renew the invitation of one not active) with a new one-time
    activation code; the login email defaults to the customer's (admin, helpdesk)."""
    require_role(actor, *WRITE_ROLES)
    customer = get_customer(session, customer_id=customer_id)
    given = email if email is not None else customer.email
    if not given:
        raise InvalidInputError("the customer has no email address; send `email` for the portal login", field="email")
    address = login_email(given)
    try:
        account = get_account(session, customer_id=customer_id, lock=True)
    except PortalAccountNotFoundError:
        account = None
    if account is not None and account.status == ACTIVE:
        raise DuplicateError(f"customer {customer_id} already has an active portal account; disable it first to "
                             "invite again")
    taken = session.execute(select(PortalAccount.id).where(PortalAccount.email == address,
                                                           PortalAccount.customer_id != customer_id)).first()
    if taken:
        raise DuplicateError(f"another customer's portal account signs in as {address}", field="email")
    now = utcnow()
    if account is None:
        account = PortalAccount(id=new_id(), customer_id=customer_id, failed_logins=0, token_generation=0,
                                created_at=now)
        session.add(account)
    code = secrets.token_urlsafe(24)
    account.email, account.status, account.password_hash = address, INVITED, None
    account.activation_code_sha256 = _code_hash(code)
    account.activation_expires_at = now + dt.timedelta(hours=settings.portal_activation_hours)
    account.failed_logins, account.locked_until, account.disabled_at = 0, None, None
    account.invited_by, account.updated_at = actor.id, now
    try:
        session.flush()
    except SQLIntegrityError as exc:  # a concurrent invitation took the address or the customer first
        raise DuplicateError(f"a portal account for customer {customer_id} or {address} already exists") from exc
    audit.record(session, actor=actor.username, action=ACCOUNT_INVITED, object_type="portal_account",
                 object_id=account.id, details={"customer_id": customer_id, "email": address,
                                                "expires_at": account.activation_expires_at.isoformat()})
    events.emit(session, ACCOUNT_INVITED, {"account_id": account.id, "customer_id": customer_id})
    return Invitation(account=account, code=code, url=activation_url(settings, code))


def check_password_rules(password: str) -> None:
    """InvalidInputError unless the password is 8 to 1024 characters (the rules for staff passwords)."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInputError(f"the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long",
                                field="password")


def activate(session: Session, *, code: str, password: str) -> PortalAccount:
    """Set the password of the invited account the code names, consuming the code; ActivationCodeError when it is
    unknown, used or expired."""
    check_password_rules(password)
    account = session.execute(select(PortalAccount).where(PortalAccount.activation_code_sha256 == _code_hash(code))
                              .with_for_update().execution_options(populate_existing=True)).scalar_one_or_none()
    if account is None or account.status != INVITED:
        raise ActivationCodeError("the activation code is not valid (it may have been used already); ask us for a "
                                  "new invitation", field="code")
    now = utcnow()
    if account.activation_expires_at is None or account.activation_expires_at <= now:
        raise ActivationCodeError("the activation code has expired; ask us for a new invitation", field="code")
    account.password_hash, account.status = hash_password(password), ACTIVE
    account.activation_code_sha256 = account.activation_expires_at = None
    account.failed_logins, account.locked_until = 0, None
    account.token_generation += 1
    account.activated_at = account.updated_at = now
    audit.record(session, actor=_actor(account.email), action=ACCOUNT_ACTIVATED, object_type="portal_account",
                 object_id=account.id, details={"customer_id": account.customer_id})
    events.emit(session, ACCOUNT_ACTIVATED, {"account_id": account.id, "customer_id": account.customer_id})
    return account


def check_login(session: Session, *, email: str, password: str) -> LoginCheck:
    """Look the account up and verify the password, only reading (so the slow hash holds no write lock). A locked
    account's password is not checked; unknown addresses cost the same hash as known ones."""
    try:
        address = login_email(email)
    except InvalidInputError:
        address = email.strip().lower()[:320]
    account = session.execute(select(PortalAccount).where(PortalAccount.email == address)).scalar_one_or_none()
    if account is not None and account.locked_until is not None and account.locked_until > utcnow():
        return LoginCheck(address, account.id, False, account.locked_until)
    ok = verify_password(account.password_hash if account is not None else None, password)
    ok = bool(ok and account is not None and account.password_hash and account.status == ACTIVE)
    return LoginCheck(address, account.id if account else None, ok, None)


def record_login(session: Session, *, check: LoginCheck, password: str, settings: Settings) -> LoginResult:
    """Record what check_login found: a success resets the failure count; a failure counts, and the Nth in a row
    locks the account. Everything is audited (never the password); the caller raises after committing."""
    account = None
    if check.account_id is not None:
        account = session.execute(select(PortalAccount).where(PortalAccount.id == check.account_id)
                                  .with_for_update().execution_options(populate_existing=True)).scalar_one_or_none()
    if account is None:
        audit.record(session, actor=_actor(check.email), action=LOGIN_FAILED, object_type="portal_account",
                     details={"reason": "no account with this email"})
        return LoginResult(None, None)
    now = utcnow()
    locked = [t for t in (check.locked_until, account.locked_until) if t is not None and t > now]
    if check.locked_until is not None or locked:
        audit.record(session, actor=_actor(account.email), action=LOGIN_FAILED, object_type="portal_account",
                     object_id=account.id, details={"reason": "locked"})
        return LoginResult(None, max(locked, default=now))
    if check.password_ok and account.status == ACTIVE:
        if needs_rehash(account.password_hash):
            account.password_hash = hash_password(password)
        account.failed_logins, account.locked_until, account.last_login_at = 0, None, now
        audit.record(session, actor=_actor(account.email), action=LOGIN, object_type="portal_account",
                     object_id=account.id, details={"customer_id": account.customer_id})
        return LoginResult(account, None)
    account.failed_logins += 1
    account.updated_at = now
    reason = "wrong password" if account.status == ACTIVE else f"account {account.status}"
    audit.record(session, actor=_actor(account.email), action=LOGIN_FAILED, object_type="portal_account",
                 object_id=account.id, details={"reason": reason, "failed_logins": account.failed_logins})
    if account.failed_logins < settings.portal_max_failed_logins:
        return LoginResult(None, None)
    account.failed_logins = 0
    account.locked_until = now + dt.timedelta(minutes=settings.portal_lockout_minutes)
    audit.record(session, actor="system", action=ACCOUNT_LOCKED, object_type="portal_account", object_id=account.id,
                 details={"until": account.locked_until.isoformat(),
                          "after_failures": settings.portal_max_failed_logins})
    events.emit(session, ACCOUNT_LOCKED, {"account_id": account.id, "customer_id": account.customer_id,
                                          "until": account.locked_until.isoformat()})
    return LoginResult(None, account.locked_until)


def locked_error(until: dt.datetime) -> PortalAccountLockedError:
    """The 429 for a locked account, with the seconds until it unlocks."""
    wait = max(1, math.ceil((until - utcnow()).total_seconds()))
    return PortalAccountLockedError(f"too many failed sign-ins: the account is locked; try again in {wait} seconds",
                                    retry_after=wait)


def disable(session: Session, *, actor: User, customer_id: str) -> PortalAccount:
    """Disable the customer's portal account: its tokens stop working at once and any invitation is void
    (admin, helpdesk); disabling a disabled account changes nothing."""
    require_role(actor, *WRITE_ROLES)
    account = get_account(session, customer_id=customer_id, lock=True)
    if account.status == DISABLED:
        return account
    now = utcnow()
    account.status, account.disabled_at, account.updated_at = DISABLED, now, now
    account.activation_code_sha256 = account.activation_expires_at = None
    account.token_generation += 1
    audit.record(session, actor=actor.username, action=ACCOUNT_DISABLED, object_type="portal_account",
                 object_id=account.id, details={"customer_id": customer_id})
    events.emit(session, ACCOUNT_DISABLED, {"account_id": account.id, "customer_id": customer_id})
    return account


def _signing_key(settings: Settings) -> bytes:
    # Derived from (not equal to) the staff secret: a customer token never verifies as a staff token.
    return hmac.new(token_secret(settings), b"postroom portal tokens", hashlib.sha256).digest()


def issue_token(account: PortalAccount, settings: Settings) -> tuple[str, dt.datetime]:
    """A signed customer bearer token for the account, and its expiry time."""
    now = utcnow()
    expires = now + dt.timedelta(minutes=settings.portal_token_lifetime_minutes)
    claims = {"typ": TOKEN_TYPE, "aud": AUDIENCE, "sub": account.id, "cid": account.customer_id,
              "gen": account.token_generation, "iat": now, "exp": expires, "jti": secrets.token_hex(8)}
    return jwt.encode(claims, _signing_key(settings), algorithm="HS256"), expires


def principal_from_token(session: Session, *, token: str, settings: Settings) -> PortalPrincipal:
    """The customer a valid portal token names, while its account is active; AuthenticationError otherwise."""
    try:
        claims = jwt.decode(token, _signing_key(settings), algorithms=["HS256"], audience=AUDIENCE,
                            options={"require": ["exp", "sub", "cid", "gen", "typ"]})
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationError("the token has expired; sign in again at /api/v1/portal/auth/token") from exc
    except jwt.PyJWTError as exc:
        raise AuthenticationError("the token is not a valid portal token") from exc
    account = session.get(PortalAccount, str(claims["sub"]))
    if (claims["typ"] != TOKEN_TYPE or account is None or account.status != ACTIVE
            or account.customer_id != claims["cid"] or account.token_generation != claims["gen"]):
        raise AuthenticationError("the portal account is disabled, or was activated again since; sign in again")
    return PortalPrincipal(account_id=account.id, customer_id=account.customer_id, email=account.email)
