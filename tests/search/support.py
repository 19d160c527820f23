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


# Metadata of different JSON kinds, and what each `meta.<key>=<value>` filter must match on every backend (and in
# holds): top-level scalars compared as text, booleans as true/false, never nested keys or list elements.
META_DOCS: dict[str, dict[str, Any]] = {
    "urgent": {"urgent": True, "count": 3, "ratio": 1.5},
    "calm": {"urgent": False, "count": 0},
    "text": {"urgent": "true"},
    "nested": {"address": {"city": "Leeds"}, "tags": ["leeds", "york"], "note": None},
    "dotted": {"address.city": "Leeds", "tags": "leeds"},
}
META_CASES: list[tuple[dict[str, str], set[str]]] = [
    ({"urgent": "true"}, {"urgent", "text"}),
    ({"urgent": "false"}, {"calm"}),
    ({"urgent": "1"}, set()),
    ({"count": "3"}, {"urgent"}),
    ({"count": "0"}, {"calm"}),
    ({"ratio": "1.5"}, {"urgent"}),
    ({"address.city": "Leeds"}, {"dotted"}),
    ({"tags": "leeds"}, {"dotted"}),
    ({"tags": "york"}, set()),
    ({"address": '{"city": "Leeds"}'}, set()),
    ({"address": '{"city":"Leeds"}'}, set()),
    ({"note": "None"}, set()),
    ({"note": "null"}, set()),
    ({"urgent": "true", "count": "3"}, {"urgent"}),
]


def add_meta_docs(author: User) -> dict[str, str]:
    """One document per META_DOCS entry, all mentioning "report"; name → id (not yet indexed: call settle)."""
    return {name: add(author, f"Status report {name}.", title=f"Meta {name}", metadata=meta)
            for name, meta in META_DOCS.items()}
