"""Who may read and write what: document types name the roles; admins may do everything."""

from __future__ import annotations

from repository.errors import NotFoundError, PermissionDeniedError
from repository.models import DocumentType, User

ADMIN = "admin"
RECORDS_MANAGER = "records_manager"


class AccessDeniedError(NotFoundError):
    """The object exists but the caller may not read it; answered exactly like a missing object."""


def _allowed(user: User, roles: list[str]) -> bool:
    return ADMIN in user.roles or bool(set(user.roles) & set(roles))


def can_read(user: User, doc_type: DocumentType) -> bool:
    """True when one of the user's roles may read documents of this type."""
    return _allowed(user, doc_type.read_roles)


def can_write(user: User, doc_type: DocumentType) -> bool:
    """True when one of the user's roles may write documents of this type."""
    return _allowed(user, doc_type.write_roles)


def can_see_restricted(user: User) -> bool:
    """Restricted documents (kept after an erasure request) are visible to records managers alone."""
    return RECORDS_MANAGER in user.roles


def require_role(user: User, *roles: str) -> None:
    """PermissionDeniedError unless the user has one of the roles (admins always pass)."""
    if not _allowed(user, list(roles)):
        raise PermissionDeniedError(
            f"this needs one of the roles: {', '.join(roles)}",
            actor=user.username, object_type="role", object_id=None, attempted=f"act as {'/'.join(roles)}",
        )


def deny_read(user: User, object_type: str, object_id: str) -> AccessDeniedError:
    """The not-found error for a denied read; the caller's error handler audits it in its own transaction."""
    return AccessDeniedError(
        f"{object_type.replace('_', ' ')} {object_id} not found",
        actor=user.username, object_type=object_type, object_id=object_id, attempted="read",
    )


def deny_write(user: User, object_type: str, object_id: str | None, what: str) -> PermissionDeniedError:
    """The error for a denied change on something the user can see; audited by the caller's error handler."""
    return PermissionDeniedError(
        f"you may not {what}", actor=user.username, object_type=object_type, object_id=object_id, attempted=what
    )
