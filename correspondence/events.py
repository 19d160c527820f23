"""Correspondence's start-up registrations: the repository's content checks for templates and blocks."""

from __future__ import annotations

from correspondence.service import validation


def register() -> None:
    """Register everything correspondence hooks into (called once at start-up by the API and the worker)."""
    validation.register()
