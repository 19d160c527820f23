"""Errors of output (composition, archive, dispatch); each subclasses the repository error with the same HTTP
meaning, so the API's one status table covers them."""

from __future__ import annotations

from repository.errors import InvalidInputError, RepositoryError


class ServiceUnavailableError(RepositoryError):
    """A service Postroom depends on is busy or down; `retry_after` (seconds) says when to try again (HTTP 503)."""

    title = "Service unavailable"


class PoolBusyError(ServiceUnavailableError):
    """Every converter is busy and the bounded queue is full: retry after `retry_after` seconds."""

    title = "Converters busy"


class ConversionError(ServiceUnavailableError):
    """LibreOffice could not convert the document (crashed or timed out) even after retrying."""

    title = "Conversion failed"


class ComposeError(InvalidInputError):
    """The input of composition is unusable (for example, a batch PDF without a letter's start)."""

    title = "Composition failed"


class UnconvertibleDocumentError(ComposeError):
    """LibreOffice answered that it cannot open or export the document: the document itself is at fault."""

    title = "Document cannot be converted"
