"""Errors of correspondence authoring and rendering; each subclasses the repository error with the same HTTP
meaning, so the API's one status table covers them."""

from __future__ import annotations

from repository.errors import DocumentStateError, InvalidInputError, NotFoundError


class TemplateNotFoundError(NotFoundError):
    """No template or content block by that id or name (or the caller may not read it)."""

    title = "Template not found"


class TemplateSyntaxError(InvalidInputError):
    """The template's Jinja does not parse; `tag` and `paragraph` say where."""

    title = "Template does not parse"


class UnknownBlockError(InvalidInputError):
    """The template includes a content block that does not exist."""

    title = "Unknown content block"


class TemplateSecurityError(InvalidInputError):
    """The template tried something the rendering sandbox forbids."""

    title = "Template not allowed"


class RenderError(InvalidInputError):
    """The template failed while rendering with the given data."""

    title = "Rendering failed"


class DataValidationError(InvalidInputError):
    """The letter data does not match the template's schema; `problems` lists every one."""

    title = "Letter data does not match the template's schema"


class SchemaError(InvalidInputError):
    """A template's data schema is not a valid JSON Schema, or the template uses variables it does not declare."""

    title = "Template schema problem"


class WorkflowError(DocumentStateError):
    """The approval transition is not allowed from the version's current state."""

    title = "Approval workflow conflict"


class FourEyesError(DocumentStateError):
    """The approver authored the version: a second person must approve it."""

    title = "Four-eyes rule"


class NotApproverError(DocumentStateError):
    """Only users with the approver role may approve or reject (409, as the issue asks, like the four-eyes rule)."""

    title = "Approver role required"
