"""Helpers for customer history tests: letters archived and delivered as output does it (the same document,
events and payloads as output/service/letters.py archive_letters and add_event), without LibreOffice."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from repository import events, service
from repository.db import transaction
from repository.models import User
from repository.types import new_id, utcnow
from tests.repository.helpers import staged


@dataclass(frozen=True)
class FakeLetter:
    """A letter as archived: its id, reference, archived document and customer."""

    letter_id: str
    reference: str
    document_id: str
    customer_id: str


def archive(author: User, customer_id: str, text: str, *, channels: tuple[str, ...] = ("print",),
            category: str = "statement", queued: tuple[tuple[str, str, str], ...] = ()) -> FakeLetter:
    """Archive a letter with this text as the customer's `letter` document and emit `letter.created`, plus the
    delivery events decided at once (`queued`: (kind, channel, reason), e.g. a suppressed channel)."""
    letter_id, reference = new_id(), f"L-{utcnow():%Y%m%d}-{secrets.token_hex(6).upper()}"
    with transaction() as s:
        document = service.create_document(
            s, actor=author, title=f"Letter {reference} (statement)", document_type="letter",
            content=staged(text.encode(), f"{reference}.txt"), customer_id=customer_id,
            metadata={"letter_id": letter_id, "reference": reference, "channels": list(channels),
                      "category": category})
        news = [(f"letter.{kind}", {"letter_id": letter_id, "customer_id": customer_id, "document_id": document.id,
                                    "channel": channel, "dispatch_id": new_id(), "detail": reason})
                for kind, channel, reason in queued]
        news.append(("letter.created", {"letter_id": letter_id, "customer_id": customer_id,
                                        "document_id": document.id, "channels": list(channels),
                                        "category": category}))
        events.emit_many(s, news)
        return FakeLetter(letter_id, reference, document.id, customer_id)


def delivery(letter: FakeLetter, kind: str, channel: str, detail: str = "") -> None:
    """A delivery event of the letter, as the dispatcher emits it (output add_event)."""
    with transaction() as s:
        events.emit(s, f"letter.{kind}", {"letter_id": letter.letter_id, "customer_id": letter.customer_id,
                                          "document_id": letter.document_id, "channel": channel,
                                          "dispatch_id": new_id(), "detail": detail})
