"""Errors raised by the repository core; the API maps each class to an HTTP status in one table."""

from __future__ import annotations


class RepositoryError(Exception):
    """Base of every repository error; `detail` tells the user what to fix."""

    title = "Repository error"

    def __init__(self, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFoundError(RepositoryError):
    """The object does not exist, or the caller may not see it."""

    title = "Not found"


class InvalidInputError(RepositoryError):
    """A value given by the caller is malformed or not allowed."""

    title = "Invalid input"


class UnknownDocumentTypeError(InvalidInputError):
    """The named document type does not exist."""

    title = "Unknown document type"


class DuplicateError(RepositoryError):
    """An object with the same unique key already exists."""

    title = "Already exists"


class DocumentLockedError(RepositoryError):
    """Another user holds the document's check-out."""

    title = "Document checked out"


class NotCheckedOutError(RepositoryError):
    """The caller holds no check-out of the document."""

    title = "Not checked out"


class DocumentStateError(RepositoryError):
    """The document's state forbids the operation (for example, it is in the trash)."""

    title = "Document state conflict"


class PreconditionFailedError(RepositoryError):
    """The If-Match tag no longer matches the document."""

    title = "Precondition failed"


class ContentTooLargeError(RepositoryError):
    """The upload is larger than the configured limit."""

    title = "Content too large"


class UnsupportedMediaTypeError(RepositoryError):
    """The detected media type is not allowed for the document type."""

    title = "Unsupported media type"


class UnsafeContentError(RepositoryError):
    """The content looks hostile: an archive bomb, an XML DOCTYPE, a path in a name."""

    title = "Unsafe content"


class AuthenticationError(RepositoryError):
    """Credentials or token are missing, wrong or expired."""

    title = "Not authenticated"


class PermissionDeniedError(RepositoryError):
    """The caller is known but lacks the role for an action on something they can see."""

    title = "Forbidden"


class IdempotencyConflictError(RepositoryError):
    """An Idempotency-Key was reused with a different request."""

    title = "Idempotency key reused"


class IntegrityError(RepositoryError):
    """Stored content does not match its recorded hash, or a key is missing."""

    title = "Integrity failure"
