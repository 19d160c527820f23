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


class SearchBackendError(SearchError):
    """The search backend failed on its side (not because of the caller's query). `detail` says only that;
    `str()` keeps the backend's reason for logs and the indexing queue."""

    title = "Search backend failed"

    def __init__(self, reason: str) -> None:
        super().__init__("the search service failed to answer; the failure has been logged; retry later, or tell an "
                         "administrator if it persists")
        self.reason = reason

    def __str__(self) -> str:
        return self.reason
