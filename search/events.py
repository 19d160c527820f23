"""Search's start-up registration: the outbox subscribers that queue documents for indexing and keep the
customer timeline."""

from __future__ import annotations


def register() -> None:
    """Queue documents for indexing on every repository event that changes them; keep the customer timeline;
    put the production packages' data keys under key rotation."""
    from repository import vault
    from search import indexing
    from search.matters.exports import EXPORT_KEYS
    from search.matters.models import MatterExport
    from search.timeline import feed

    indexing.register()
    feed.register()
    vault.register_key_holder(MatterExport, context=EXPORT_KEYS)  # production packages are encrypted
