"""Typed errors of letters and dispatch; each subclasses the repository error with the same HTTP meaning."""

from __future__ import annotations

from repository.errors import DocumentStateError, InvalidInputError, NotFoundError


class LetterNotFoundError(NotFoundError):
    """No such letter, or the caller may not read it (answered alike)."""

    title = "Letter not found"


class LetterArchivedError(DocumentStateError):
    """A letter's archived document cannot be checked out or given new content: it stays as it was sent."""

    title = "Letter archived as sent"


class ChannelChoiceError(InvalidInputError):
    """The requested channel does not exist or cannot reach this customer."""

    title = "Channel not possible"


class BatchNotFoundError(NotFoundError):
    """No such batch, or the caller may not see it (answered alike)."""

    title = "Batch not found"


class BatchStateError(DocumentStateError):
    """The batch cannot do that in its current state (cancel a finished batch, for example)."""

    title = "Batch state conflict"


class MessageTemplateNotFoundError(NotFoundError):
    """No message template by that id (or the caller may not read them; answered alike)."""

    title = "Message template not found"
