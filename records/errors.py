"""Errors raised by records management; each subclasses the repository error the API maps to its status."""

from __future__ import annotations

from repository.errors import DocumentStateError, DuplicateError, InvalidInputError, NotFoundError


class RecordsError(DocumentStateError):
    """Base of records conflicts (409): the document's records state forbids the change."""

    title = "Records management conflict"


class RecordDeclaredError(RecordsError):
    """The document is a declared record: its content and versions cannot change and it cannot be deleted."""

    title = "Document is a record"


class LegalHoldActiveError(RecordsError):
    """A legal hold covers the document: it cannot be destroyed, deleted or brought forward."""

    title = "Legal hold active"


class DispositionStateError(RecordsError):
    """The disposition batch is not in a state that allows this."""

    title = "Disposition batch state conflict"


class HoldStateError(RecordsError):
    """The legal hold is not in a state that allows this (for example, it was released)."""

    title = "Legal hold state conflict"


class RecordsNotFoundError(NotFoundError):
    """A file-plan class, hold, disposition batch or erasure request does not exist."""


class DuplicateClassError(DuplicateError):
    """A file-plan class with the same code exists."""

    title = "Class code taken"


class InvalidRuleError(InvalidInputError):
    """A retention rule or file-plan change is malformed."""

    title = "Invalid retention rule"
