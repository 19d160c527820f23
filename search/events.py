"""Search's start-up registration: the outbox subscribers that queue documents for indexing."""

from __future__ import annotations


def register() -> None:
    """Queue documents for indexing on every repository event that changes them."""
    from search import indexing

    indexing.register()
