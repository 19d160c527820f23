"""The customer's portal inbox: the letters published on the portal channel, one letter, and its archived PDF.

Decisions:
- A letter is in the inbox once its `portal` ledger row is delivered (the dispatcher delivers portal rows at once,
  output/channels/_portal.py), for as long as its archived document is not in the trash.
- Everything is scoped to the customer of the caller's token: another customer's letter, or one never published
  to the portal, is a LetterNotFoundError (404), the same answer as a letter that does not exist.
- The PDF is the letter's archived version (output/service/archived.py): exactly what was composed and sent.
- Opening the PDF puts an `opened` delivery event on the portal row (and the customer's timeline) the first time
  only; a letter with that event is `read` in the inbox.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from output.models import DELIVERED, OPENED, DeliveryEvent, Dispatch, Letter
from output.service._errors import LetterNotFoundError
from output.service.archived import archived_version
from output.service.policy import PORTAL
from output.service.tracking import record_tracking
from repository.models import Document, DocumentVersion
from repository.service import read_version

# The document listing's (created_at, id) cursor fits letters as well: one cursor format for newest-first lists.
from repository.service.documents import ACTIVE, decode_cursor, encode_cursor

MAX_PAGE = 200


@dataclass(frozen=True)
class InboxLetter:
    """A letter as the customer sees it in the portal."""

    id: str
    reference: str
    title: str
    template: str
    category: str
    pages: int
    created_at: dt.datetime
    published_at: dt.datetime | None
    read: bool


@dataclass(frozen=True)
class InboxPage:
    """One page of the inbox, newest first; follow next_cursor for more."""

    items: list[InboxLetter]
    next_cursor: str | None


def title_of(template_name: str) -> str:
    """A human title from a template name: "annual_statement" -> "Annual statement"."""
    return template_name.replace("_", " ").replace("-", " ").strip().capitalize() or "Letter"


def _inbox(customer_id: str):  # noqa: ANN202
    read = exists().where(DeliveryEvent.letter_id == Letter.id, DeliveryEvent.dispatch_id == Dispatch.id,
                          DeliveryEvent.kind == OPENED)
    return (select(Letter, Dispatch.delivered_at, read.label("read"))
            .join(Dispatch, and_(Dispatch.letter_id == Letter.id, Dispatch.channel == PORTAL))
            .join(Document, Document.id == Letter.document_id)
            .where(Letter.customer_id == customer_id, Dispatch.state == DELIVERED, Document.state == ACTIVE,
                   Document.restricted.is_(False)))  # restricted by an erasure request: records managers only


def _item(letter: Letter, published_at: dt.datetime | None, read: bool) -> InboxLetter:
    return InboxLetter(id=letter.id, reference=letter.reference, title=title_of(letter.template_name),
                       template=letter.template_name, category=letter.category, pages=letter.pages,
                       created_at=letter.created_at, published_at=published_at, read=bool(read))


def list_inbox(session: Session, *, customer_id: str, cursor: str | None = None, limit: int = 50) -> InboxPage:
    """The customer's portal letters, newest first, one page at a time."""
    limit = min(max(limit, 1), MAX_PAGE)
    stmt = _inbox(customer_id)
    if cursor:
        at, last_id = decode_cursor(cursor)
        stmt = stmt.where(or_(Letter.created_at < at, and_(Letter.created_at == at, Letter.id < last_id)))
    rows = list(session.execute(stmt.order_by(Letter.created_at.desc(), Letter.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return InboxPage([_item(*row) for row in rows], encode_cursor(rows[-1][0]) if more else None)


def get_inbox_letter(session: Session, *, customer_id: str, letter_id: str) -> InboxLetter:
    """One letter of the customer's inbox; LetterNotFoundError when it is not there (for this customer)."""
    row = session.execute(_inbox(customer_id).where(Letter.id == letter_id)).first()
    if row is None:
        raise LetterNotFoundError(f"letter {letter_id} not found")
    return _item(*row)


def open_pdf(session: Session, *, customer_id: str, letter_id: str
             ) -> tuple[InboxLetter, DocumentVersion, Iterator[bytes]]:
    """The inbox letter, the archived version as sent, and a stream of its PDF."""
    letter = get_inbox_letter(session, customer_id=customer_id, letter_id=letter_id)
    version = archived_version(session, document_id=session.get(Letter, letter_id).document_id)
    if version is None:
        raise LetterNotFoundError(f"letter {letter_id} not found")
    return letter, version, read_version(session, version=version)


def mark_opened(session: Session, *, letter_id: str) -> None:
    """Record that the customer opened the letter in the portal (the first time only)."""
    record_tracking(session, letter_id=letter_id, channel=PORTAL, kind=OPENED, detail="opened in the portal")
