"""Errors raised by search; each subclasses the repository error the API maps to its status."""

from __future__ import annotations

from repository.errors import InvalidInputError, RepositoryError


class SearchError(RepositoryError):
    """Base of search errors."""

    title = "Search error"


class QuerySyntaxError(InvalidInputError):
    """The query text cannot be parsed; `position` (0-based) says where."""

    title = "Malformed query"


class SearchUnavailableError(SearchError):
    """The search backend cannot be reached (writes go on; the index catches up from the outbox)."""

    title = "Search unavailable"
