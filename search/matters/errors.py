"""Errors of e-discovery; the API maps them to statuses (api/routers/matters.py registers them)."""

from __future__ import annotations

from search.errors import SearchError


class MatterStateError(SearchError):
    """The matter is closed, or the change conflicts with what the matter already did (409)."""

    title = "Matter state conflict"


class ExportNotReadyError(SearchError):
    """The export's ZIP is not there to download (queued, running or failed) (409)."""

    title = "Export not ready"


class ExportExpiredError(SearchError):
    """The export's package was deleted when its retention ended; request a new export (410)."""

    title = "Export expired"
