"""Letters: render, compose to PDF/A, archive as the customer's `letter` document, and queue the ledger rows.

Decisions:
- Who may create letters: whoever may write documents of type `letter` (by default admin and author; an admin
  can add helpdesk to that type's write roles). Who may read a letter: whoever may read its archived document
  (every staff role by default). A letter the caller may not read is a 404.
- Three steps, so the slow middle one holds no write transaction (SQLite has one writer): `prepare_letter`
  reads and renders (a read-only transaction will do), `compose_letter` converts with no session at all, and
  `archive_letter` stores the PDF and writes the letter, its ledger rows and events in the caller's write
  transaction. `create_letter` runs the three on one session for callers that hold only one.
- The letter id and reference are chosen before rendering, so the PDF's XMP and the letter itself carry them.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from typing import Any

import pikepdf
from sqlalchemy import select
from sqlalchemy.orm import Session

from correspondence.service import render_letter
from output import events as names
from output.compose import get_pool, set_metadata
from output.models import (
    COMPOSED,
    DISPATCHING,
    DONE,
    FAILED,
    FINAL_STATES,
    QUEUED,
    SENT,
    SUPPRESSED,
    DeliveryEvent,
    Dispatch,
    Letter,
)
from output.service import policy
from output.service._errors import LetterNotFoundError
from repository import audit, events
from repository.access import can_read, can_write, deny_read, deny_write
from repository.config import get_settings
from repository.content import stage_stream
from repository.errors import NotFoundError
from repository.models import Customer, Document, DocumentType, User
from repository.service import create_document, get_type
from repository.types import new_id, utcnow

LETTER_TYPE = "letter"
DEFAULT_CATEGORY = "other"


@dataclass(frozen=True)
class PreparedLetter:
    """A rendered letter not yet composed: what produced it and where it goes."""

    letter_id: str
    reference: str
    customer_id: str
    template_id: str
    template_name: str
    template_version: str
    category: str
    data_sha256: str
    channel: str | None
    docx: bytes


@dataclass(frozen=True)
class ComposedLetter:
    """A letter composed to PDF/A with its metadata, ready to archive."""

    prepared: PreparedLetter
    pdf: bytes
    pages: int


def new_reference() -> str:
    """A human letter reference: L-YYYYMMDD-XXXXXXXXXXXX (48 random bits: no collision in a big day's batch)."""
    return f"L-{utcnow():%Y%m%d}-{secrets.token_hex(6).upper()}"


def _letter_type(session: Session) -> DocumentType:
    return get_type(session, name=LETTER_TYPE)


def prepare_letter(session: Session, *, actor: User, template: str, customer_id: str, data: dict[str, Any],
                   category: str | None = None, channel: str | None = None) -> PreparedLetter:
    """Check the caller may send letters and render one with the active approved template version."""
    if not can_write(actor, _letter_type(session)):
        raise deny_write(actor, "letter", None, "create letters")
    channel = channel.strip().lower() if channel else None
    customer = session.get(Customer, customer_id)
    if channel and customer is not None:
        policy.check_override(customer, channel)  # before the slow part; archive_letter checks again
    letter_id, reference = new_id(), new_reference()
    rendered = render_letter(session, actor=actor, template=template, customer_id=customer_id, data=data,
                             letter={"id": letter_id, "reference": reference})
    chosen = (category or rendered.template.category or DEFAULT_CATEGORY).strip().lower()
    return PreparedLetter(letter_id=letter_id, reference=reference, customer_id=customer_id,
                          template_id=rendered.template.id, template_name=rendered.template.name,
                          template_version=rendered.version, category=chosen, data_sha256=rendered.data_sha256,
                          channel=channel, docx=rendered.docx)


def compose_letter(prepared: PreparedLetter) -> ComposedLetter:
    """Convert the rendered DOCX to PDF/A-2b and write the letter's metadata into its XMP (no database)."""
    pdf = get_pool().convert(prepared.docx, pdfa=True)
    pdf = set_metadata(pdf, letter_id=prepared.letter_id, template=prepared.template_name,
                       template_version=prepared.template_version, title=f"Letter {prepared.reference}",
                       extra={"reference": prepared.reference, "dataSha256": prepared.data_sha256,
                              "category": prepared.category})
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        pages = len(doc.pages)
    return ComposedLetter(prepared=prepared, pdf=pdf, pages=pages)


def archive_letter(session: Session, *, actor: User, composed: ComposedLetter,
                   batch_id: str | None = None) -> Letter:
    """Store the PDF as the customer's `letter` document, write the letter and its ledger rows, emit
    `letter.created`."""
    p = composed.prepared
    settings = get_settings()
    now = utcnow()
    # Locked, so two letters to one customer count each other against the marketing cap (PostgreSQL; SQLite's
    # writing transaction holds the database's write lock anyway).
    customer = session.execute(select(Customer).where(Customer.id == p.customer_id).with_for_update()
                               .execution_options(populate_existing=True)).scalar_one_or_none()
    if customer is None:
        raise NotFoundError(f"customer {p.customer_id} not found")
    plans = policy.choose(session, settings=settings, customer=customer, category=p.category, override=p.channel,
                          now=now)
    channels = [plan.channel for plan in plans]
    staged = stage_stream(iter([composed.pdf]), max_bytes=max(settings.max_upload_bytes, len(composed.pdf)),
                          tmp_dir=settings.tmp_dir, filename=f"{p.reference}.pdf")
    metadata = {"letter_id": p.letter_id, "reference": p.reference, "template_id": p.template_id,
                "template_name": p.template_name, "template_version": p.template_version,
                "data_sha256": p.data_sha256, "batch_id": batch_id, "channels": channels, "category": p.category,
                "pages": composed.pages}
    document = create_document(session, actor=actor, title=f"Letter {p.reference} ({p.template_name})",
                               document_type=LETTER_TYPE, content=staged, customer_id=p.customer_id,
                               metadata=metadata, comment="archived as composed")
    session.flush()
    letter = Letter(id=p.letter_id, reference=p.reference, customer_id=p.customer_id, template_id=p.template_id,
                    template_name=p.template_name, template_version=p.template_version, category=p.category,
                    data_sha256=p.data_sha256, document_id=document.id, pages=composed.pages, status=COMPOSED,
                    batch_id=batch_id, created_by=actor.id, created_at=now, updated_at=now)
    session.add(letter)
    session.flush()
    for plan in plans:
        row = Dispatch(id=new_id(), letter_id=letter.id, channel=plan.channel,
                       idempotency_key=f"{letter.id}:{plan.channel}", state=plan.state, attempts=0,
                       next_attempt_at=plan.next_attempt_at if plan.state == QUEUED else None, reason=plan.reason,
                       created_at=now, updated_at=now)
        session.add(row)
        session.flush()
        add_event(session, row, letter, plan.state, plan.reason or "")
    refresh_status(session, letter)
    audit.record(session, actor=actor.username, action=names.LETTER_CREATED, object_type="letter",
                 object_id=letter.id, details={"reference": letter.reference, "customer_id": letter.customer_id,
                                               "template": letter.template_name,
                                               "template_version": letter.template_version,
                                               "document_id": document.id, "channels": channels})
    events.emit(session, names.LETTER_CREATED, {"letter_id": letter.id, "customer_id": letter.customer_id,
                                                "document_id": document.id, "channels": channels,
                                                "category": letter.category})
    return letter


def create_letter(session: Session, *, actor: User, template: str, customer_id: str, data: dict[str, Any],
                  category: str | None = None, channel: str | None = None, batch_id: str | None = None) -> Letter:
    """Render, compose, archive and queue one letter in the caller's session (see the module's decisions)."""
    prepared = prepare_letter(session, actor=actor, template=template, customer_id=customer_id, data=data,
                              category=category, channel=channel)
    return archive_letter(session, actor=actor, composed=compose_letter(prepared), batch_id=batch_id)


def add_event(session: Session, row: Dispatch, letter: Letter, kind: str, detail: str = "") -> None:
    """Record a delivery event for the customer's timeline, and the matching outbox event when it is news."""
    session.add(DeliveryEvent(dispatch_id=row.id, letter_id=letter.id, customer_id=letter.customer_id, kind=kind,
                              at=utcnow(), detail=detail[:2000]))
    if kind in names.BY_KIND:
        events.emit(session, names.BY_KIND[kind], {"letter_id": letter.id, "customer_id": letter.customer_id,
                                                   "channel": row.channel, "dispatch_id": row.id,
                                                   "detail": detail[:500]})


def refresh_status(session: Session, letter: Letter) -> None:
    """The letter's status from its ledger rows: done or failed once every row has settled."""
    session.flush()
    rows = list(session.execute(select(Dispatch).where(Dispatch.letter_id == letter.id)).scalars())
    polled = {"print"}  # channels whose `sent` is followed up to delivered or failed
    settled = [r.state in FINAL_STATES or (r.state == SENT and r.channel not in polled) for r in rows]
    if rows and all(settled):
        good = any(r.state in ("delivered", SENT) for r in rows) or all(r.state == SUPPRESSED for r in rows)
        status = DONE if good else FAILED
    elif any(r.attempts or r.state != QUEUED for r in rows if r.state != SUPPRESSED):
        status = DISPATCHING
    else:
        status = COMPOSED
    if status != letter.status:
        letter.status, letter.updated_at = status, utcnow()


def get_letter(session: Session, *, actor: User, letter_id: str) -> Letter:
    """The letter if the caller may read its archived document; LetterNotFoundError otherwise."""
    letter = session.get(Letter, letter_id)
    if letter is None:
        raise LetterNotFoundError(f"letter {letter_id} not found")
    document = session.get(Document, letter.document_id)
    if document is None or not can_read(actor, session.get(DocumentType, document.document_type_id)):
        raise deny_read(actor, "letter", letter_id)
    return letter


def ledger(session: Session, *, letter_id: str) -> tuple[list[Dispatch], list[DeliveryEvent]]:
    """A letter's ledger rows and delivery events, oldest first (access must already be checked)."""
    rows = list(session.execute(select(Dispatch).where(Dispatch.letter_id == letter_id)
                                .order_by(Dispatch.created_at, Dispatch.channel)).scalars())
    found = list(session.execute(select(DeliveryEvent).where(DeliveryEvent.letter_id == letter_id)
                                 .order_by(DeliveryEvent.id)).scalars())
    return rows, found
