"""Typed errors of print runs; the API maps the state conflicts to 409 and bad result files to 422."""

from __future__ import annotations

from repository.errors import InvalidInputError, NotFoundError, RepositoryError


class PrintRunNotFoundError(NotFoundError):
    """No such print run, or the caller may not see print runs (answered alike)."""

    title = "Print run not found"


class NothingToPrintError(RepositoryError):
    """No queued print letter and no damaged piece awaiting its reprint: a run now would be empty (409)."""

    title = "Nothing to print"


class PrintRunConflictError(RepositoryError):
    """Another run took some of the planned letters while this one was being built; plan again (409)."""

    title = "Print run conflict"


class PrintResultsError(InvalidInputError):
    """The inserter's result file is unusable; `errors` names each bad line (422, nothing applied)."""

    title = "Invalid print results"


class PrintResultConflictError(RepositoryError):
    """A result contradicts one recorded earlier for the same piece (409, nothing applied)."""

    title = "Print result conflict"
