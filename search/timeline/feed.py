"""Outbox subscribers that keep the customer timeline.

- `document.created` of a document with a customer: a `document` entry (not for type `letter`: its
  `letter.created` event puts the letter on the timeline instead).
- `letter.created`: a `letter` entry; every delivery event of a letter (`letter.sent`, `letter.delivered`, ...):
  a `delivery` entry with its channel and detail. The names are output's contract (output/events.py BY_KIND);
  search may not import output, so they are spelled here.
- `document.updated` / `trashed` / `restored` / `destroyed`: the entries of that document follow its title and
  state; a destroyed document's entries (its letter and delivery events too) are deleted.
- `complaint.*` does not exist yet: the complaints issue subscribes its events here and builds entries of kind
  `complaint` with `add_entries` (see DEVELOPERS.md "Search: customer history").

Entries are built from the document as it is now (not as the event saw it), so handling events late or out of
order, or replaying them in the backfill, ends in the same timeline. One entry per source event (unique)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from repository import events
from repository.db import is_postgres
from repository.models import Document, DocumentType, OutboxEvent
from search.query import words_of
from search.timeline.models import TimelineEntry

SUBSCRIBER = "search.timeline"
DESTROYED = "destroyed"
LETTER_TYPE = "letter"  # archived letters: their `letter.created` event makes the entry
LETTER_CREATED = "letter.created"
# The delivery events of output/events.py BY_KIND (event name -> delivery kind) and how the timeline says them.
DELIVERY_EVENTS = {"letter.sent": "sent", "letter.delivered": "delivered", "letter.failed": "failed",
                   "letter.bounced": "bounced", "letter.suppressed": "suppressed", "letter.opened": "opened",
                   "letter.clicked": "clicked", "letter.damaged": "damaged", "letter.soft_bounced": "soft_bounced"}
_SAID = {"clicked": "link clicked", "damaged": "damaged in print", "soft_bounced": "delayed (soft bounce)"}
CREATING = (events.DOCUMENT_CREATED, LETTER_CREATED, *DELIVERY_EVENTS)
CHANGING = (events.DOCUMENT_UPDATED, events.DOCUMENT_TRASHED, events.DOCUMENT_RESTORED, events.DOCUMENT_DESTROYED)
NO_TERMS = " "  # documents and letters are matched through the search index, not on terms


def terms_of(*texts: str | None) -> str:
    """The words of some texts as the timeline matches them: " w1 w2 ... " (see models.py)."""
    words = words_of(" ".join(t for t in texts if t))
    return f" {' '.join(words)} " if words else NO_TERMS


def _document_entry(event: OutboxEvent, doc: Document | None, type_name: str) -> dict[str, Any] | None:
    if doc is None or doc.customer_id is None or doc.state == DESTROYED or type_name == LETTER_TYPE:
        return None
    return {"customer_id": doc.customer_id, "at": doc.created_at, "kind": "document", "subject_type": "document",
            "subject_id": doc.id, "document_id": doc.id, "title": doc.title, "summary": type_name, "channel": None,
            "state": doc.state, "details": {"document_type": type_name}, "terms": NO_TERMS}


def _letter_entry(event: OutboxEvent, doc: Document | None) -> dict[str, Any] | None:
    p = event.payload
    customer_id = p.get("customer_id") or (doc.customer_id if doc is not None else None)
    if doc is None or doc.state == DESTROYED or not customer_id or not p.get("letter_id"):
        return None
    channels = [str(c) for c in p.get("channels") or []]
    category = str(p.get("category") or "")
    summary = " ".join(x for x in (category, "letter") if x) + (f" by {', '.join(channels)}" if channels else "")
    # At the archived document's creation: before the delivery events written with it, so it lists below them.
    return {"customer_id": customer_id, "at": doc.created_at, "kind": "letter", "subject_type": "letter",
            "subject_id": str(p["letter_id"]), "document_id": doc.id, "title": doc.title, "summary": summary,
            "channel": channels[0] if len(channels) == 1 else None, "state": "created",
            "details": {"letter_id": p["letter_id"], "reference": (doc.meta or {}).get("reference"),
                        "channels": channels, "category": category}, "terms": NO_TERMS}


def _delivery_entry(event: OutboxEvent, doc: Document | None) -> dict[str, Any] | None:
    p = event.payload
    customer_id = p.get("customer_id") or (doc.customer_id if doc is not None else None)
    if doc is None or doc.state == DESTROYED or not customer_id or not p.get("letter_id"):
        return None  # an event we cannot tie to a readable document could not be access-checked
    kind = DELIVERY_EVENTS[event.name]
    channel = str(p.get("channel") or "")[:20] or None
    detail = str(p.get("detail") or "")
    reference = (doc.meta or {}).get("reference")
    said = _SAID.get(kind, kind)
    title = f"Letter {reference or ''}".rstrip() + f": {said}" + (f" ({channel})" if channel else "")
    return {"customer_id": customer_id, "at": event.created_at, "kind": "delivery", "subject_type": "dispatch",
            "subject_id": str(p.get("dispatch_id") or p["letter_id"]), "document_id": doc.id, "title": title[:500],
            "summary": detail[:1000], "channel": channel, "state": kind,
            "details": {"letter_id": p["letter_id"], "dispatch_id": p.get("dispatch_id"), "reference": reference,
                        "event": event.name}, "terms": terms_of(kind, said, channel, detail)}


def _letter_document(session: Session, payload: dict[str, Any]) -> str | None:
    """The archived document of a letter whose event predates events carrying `document_id`."""
    if not payload.get("letter_id"):
        return None
    stmt = select(Document.id).where(Document.meta["letter_id"].as_string() == str(payload["letter_id"]))
    if payload.get("customer_id"):
        stmt = stmt.where(Document.customer_id == payload["customer_id"])
    return session.execute(stmt.limit(1)).scalar_one_or_none()


def entries_for(session: Session, batch: Sequence[OutboxEvent]) -> list[dict[str, Any]]:
    """The timeline rows these creating events make (none for those that make none), ready to insert."""
    wanted = {e.id: e.payload.get("document_id") or (_letter_document(session, e.payload)
                                                      if e.name in DELIVERY_EVENTS else None) for e in batch}
    ids = {d for d in wanted.values() if d}
    docs = {d.id: d for d in session.execute(select(Document).where(Document.id.in_(ids))).scalars()} if ids else {}
    names = dict(session.execute(select(DocumentType.id, DocumentType.name)).all()) if ids else {}
    rows = []
    for event in batch:
        doc = docs.get(wanted[event.id] or "")
        if event.name == events.DOCUMENT_CREATED:
            row = _document_entry(event, doc, names.get(doc.document_type_id, "") if doc is not None else "")
        elif event.name == LETTER_CREATED:
            row = _letter_entry(event, doc)
        elif event.name in DELIVERY_EVENTS:
            row = _delivery_entry(event, doc)
        else:
            row = None
        if row is not None:
            rows.append({"source_event_id": event.id, **row})
    return rows


def add_entries(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert timeline rows, skipping any whose source event already has one; returns how many were new."""
    if not rows:
        return 0
    known = set(session.execute(select(TimelineEntry.source_event_id).where(
        TimelineEntry.source_event_id.in_([r["source_event_id"] for r in rows]))).scalars())
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    # ON CONFLICT as well: a backfill and the live subscriber may write the same event at once.
    session.execute(insert(TimelineEntry).on_conflict_do_nothing(index_elements=["source_event_id"]), rows)
    return len([r for r in rows if r["source_event_id"] not in known])


def on_creating_event(session: Session, event: OutboxEvent) -> None:
    """Outbox subscriber: a document, letter or delivery event; put it on the customer's timeline."""
    add_entries(session, entries_for(session, [event]))


def on_document_changed(session: Session, event: OutboxEvent) -> None:
    """Outbox subscriber: a document's title or state changed; its entries follow (destroyed: removed)."""
    document_id = event.payload.get("document_id")
    if not document_id:
        return
    doc = session.get(Document, document_id)
    if doc is None or doc.state == DESTROYED:
        session.execute(delete(TimelineEntry).where(TimelineEntry.document_id == document_id))
        return
    session.execute(update(TimelineEntry).where(TimelineEntry.document_id == document_id,
                                                TimelineEntry.kind.in_(("document", "letter")))
                    .values(title=doc.title))
    session.execute(update(TimelineEntry).where(TimelineEntry.document_id == document_id,
                                                TimelineEntry.kind == "document").values(state=doc.state))


def register() -> None:
    """Subscribe the timeline to the events that make and change its entries."""
    for name in CREATING:
        events.subscribe(name, SUBSCRIBER, on_creating_event)
    for name in CHANGING:
        events.subscribe(name, SUBSCRIBER, on_document_changed)
