"""A letter's archived PDF: the version stored when the letter was archived, exactly as it was sent.

Decisions:
- The archived version is the first version of the letter's document: `archive_letters` creates the document
  with that one version. Every reader of a letter's PDF (the letter's PDF endpoint, the dispatcher, print runs,
  the portal) takes it through `archived_version`, so the help desk, the customer and the print house see the
  same bytes, even for a letter document that was given a later version before the guard below existed.
- The repository guard `guard` (registered at start-up, output/events.py) refuses to check out a letter's
  document or give it new content (check-in, working copy, WebDAV PUT): a letter is a record of what was sent.
  Moving it to the trash stays possible (records management and erasure decide about that).
- A letter whose document was destroyed (erasure or disposition shred its data key) can never be sent again:
  `fail_destroyed` fails a pending ledger row with the reason, without a fallback, since every channel needs the
  same PDF or a link to it. The dispatcher calls it before sending; `on_document_destroyed` (an outbox
  subscriber) settles the letter's pending rows as soon as the document is destroyed, print-house rows included.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, exists, select
from sqlalchemy.orm import Session, aliased

from output.models import FAILED, HANDOVER, PIECE_DAMAGED, QUEUED, SENDING, SENT, Dispatch, Letter, PrintPiece
from output.service._errors import LetterArchivedError, LetterNotFoundError
from output.service.letters import add_event, get_letter, refresh_status
from repository import audit
from repository.guards import Operation
from repository.models import Document, DocumentVersion, OutboxEvent, User
from repository.service.documents import DESTROYED
from repository.types import utcnow

ACTOR = "system:dispatcher"
DESTROYED_REASON = ("the letter's archived document was destroyed (erasure or disposition): its PDF can no longer "
                    "be sent on any channel")
_REFUSED = {"checkout": "checked out", "content": "given new content"}


def archived_version_id(document_id: Any) -> Any:  # noqa: ANN401 (a column or a value)
    """SQL for the id of the archived (first) version of `document_id`, a value or a correlated column."""
    first = aliased(DocumentVersion)
    return (select(first.id).where(first.document_id == document_id)
            .order_by(first.major, first.minor).limit(1).correlate_except(first).scalar_subquery())


def archived_version(session: Session, *, document_id: str) -> DocumentVersion | None:
    """The archived version of a letter's document (None when it has none)."""
    return session.execute(select(DocumentVersion).where(
        DocumentVersion.id == archived_version_id(document_id))).scalar_one_or_none()


def letter_pdf(session: Session, *, actor: User, letter_id: str) -> tuple[Letter, DocumentVersion]:
    """The letter (if the caller may read it) and its archived version; LetterNotFoundError otherwise."""
    letter = get_letter(session, actor=actor, letter_id=letter_id)
    version = archived_version(session, document_id=letter.document_id)
    if version is None:
        raise LetterNotFoundError(f"letter {letter_id} not found")
    return letter, version


def destroyed(session: Session, letter: Letter) -> bool:
    """True when the letter's archived document was destroyed (its content is unreadable for good)."""
    document = session.get(Document, letter.document_id)
    return document is None or document.state == DESTROYED


def guard(session: Session, document: Document, operation: Operation) -> None:
    """Repository guard: a letter's document is never checked out or given new content."""
    if operation not in _REFUSED:
        return
    reference = session.execute(select(Letter.reference).where(Letter.document_id == document.id)).scalar()
    if reference is not None:
        raise LetterArchivedError(
            f"document {document.id} is the archived PDF of letter {reference}; it cannot be {_REFUSED[operation]}: "
            "a letter is kept exactly as it was sent", reference=reference)


def fail_for_good(session: Session, *, row: Dispatch, letter: Letter, detail: str) -> None:
    """Fail a ledger row with no retry and no fallback, with the reason on the row, its events and the audit trail."""
    now = utcnow()
    row.state, row.lease_until, row.next_attempt_at, row.updated_at = FAILED, None, None, now
    row.last_error = detail
    add_event(session, row, letter, FAILED, detail)
    refresh_status(session, letter)
    audit.record(session, actor=ACTOR, action="letter.dispatch_failed", object_type="dispatch", object_id=row.id,
                 details={"letter_id": letter.id, "channel": row.channel, "attempts": row.attempts, "detail": detail})


def fail_destroyed(session: Session, *, row: Dispatch, letter: Letter) -> None:
    """Fail a pending row of a letter whose document was destroyed (no fallback: see the module's decisions)."""
    fail_for_good(session, row=row, letter=letter, detail=DESTROYED_REASON)


def awaiting_reprint() -> ColumnElement[bool]:
    """SQL: the PrintPiece was damaged by the inserter and has no reprint yet."""
    reprint = aliased(PrintPiece)
    return and_(PrintPiece.status == PIECE_DAMAGED, ~exists().where(reprint.reprint_of == PrintPiece.id))


def _awaits_reprint(session: Session, row: Dispatch) -> bool:
    damaged = select(PrintPiece.id).where(PrintPiece.dispatch_id == row.id, awaiting_reprint())
    return row.channel == "print" and session.execute(damaged.limit(1)).first() is not None


def _pending(session: Session, row: Dispatch) -> bool:
    if row.state == QUEUED:
        return True
    if row.state == SENDING:  # a dispatcher still holding its lease records its own outcome
        if (row.provider_ref or "").startswith(HANDOVER):
            return False  # the relay has the email (the dispatcher settles it as sent): it is not undone
        return row.lease_until is None or row.lease_until < utcnow()
    return row.state == SENT and _awaits_reprint(session, row)


def on_document_destroyed(session: Session, event: OutboxEvent) -> None:
    """Outbox subscriber: a destroyed letter document fails the letter's pending rows (idempotent)."""
    letter = session.execute(select(Letter).where(Letter.document_id == event.payload["document_id"])).scalar()
    if letter is None:
        return
    rows = session.execute(select(Dispatch).where(Dispatch.letter_id == letter.id)
                           .order_by(Dispatch.id).with_for_update()).scalars()
    for row in rows:
        if _pending(session, row):
            fail_destroyed(session, row=row, letter=letter)
