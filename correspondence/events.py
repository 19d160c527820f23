"""Correspondence's event names and its start-up registrations (the repository's content checks for templates
and content blocks)."""

from __future__ import annotations

TEMPLATE_CREATED = "template.created"
TEMPLATE_UPDATED = "template.updated"
VERSION_SUBMITTED = "template.version_submitted"
VERSION_APPROVED = "template.version_approved"
VERSION_REJECTED = "template.version_rejected"
ROLLED_BACK = "template.rolled_back"
RULES_CHANGED = "template.rules_changed"


def register() -> None:
    """Register everything correspondence hooks into (called once at start-up by the API and the worker)."""
    from correspondence.service import validation  # here, not at the top: the service imports these names

    validation.register()
