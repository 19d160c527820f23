"""Search's start-up registration: the outbox subscribers that queue documents for indexing and keep the
customer timeline."""

from __future__ import annotations


def register() -> None:
    """Queue documents for indexing on every repository event that changes them; keep the customer timeline."""
    from search import indexing
    from search.timeline import feed

    indexing.register()
    feed.register()
