"""Helpers for search tests: documents with text, the outbox and the indexer run to completion."""

from __future__ import annotations

from typing import Any

from repository import events, service
from repository.db import get_engine, transaction
from repository.models import User
from search import events as search_events
from search import indexing
from search.backend import reset_backends
from tests.repository.helpers import staged


def start() -> None:
    """Register the indexing subscribers and forget backends made under earlier settings."""
    reset_backends()
    search_events.register()


def settle() -> None:
    """Deliver every outbox event and index every queued document."""
    engine = get_engine()
    while events.deliver_pending(engine) or indexing.index_pending(engine):
        pass


def add(author: User, text: str, *, title: str = "Note", document_type: str = "general",
        customer_id: str | None = None, metadata: dict[str, Any] | None = None, filename: str = "note.txt") -> str:
    """Create a document with this text; returns its id (not yet indexed: call settle)."""
    with transaction() as session:
        return service.create_document(session, actor=author, title=title, document_type=document_type,
                                       content=staged(text.encode(), filename), customer_id=customer_id,
                                       metadata=metadata).id
