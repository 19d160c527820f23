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

import dataclasses
import io
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pikepdf
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from correspondence.service import render_letter
from output import events as names
from output.compose import LetterMetadata, get_pool, set_metadata
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
from repository.access import can_write, deny_read, deny_write
from repository.config import get_settings
from repository.content import stage_stream
from repository.errors import NotFoundError
from repository.models import Customer, Document, DocumentType, User
from repository.service import NewDocument, create_documents, get_type
from repository.service.documents import readable
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
    docx: bytes | None  # None for a letter rendered into a batch's shared document


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


def letter_metadata(prepared: PreparedLetter) -> LetterMetadata:
    """What a letter's PDF carries in its XMP: letter id, template and version, title, reference, data hash."""
    return LetterMetadata(letter_id=prepared.letter_id, template=prepared.template_name,
                          template_version=prepared.template_version, title=f"Letter {prepared.reference}",
                          extra={"reference": prepared.reference, "dataSha256": prepared.data_sha256,
                                 "category": prepared.category})


def compose_letter(prepared: PreparedLetter) -> ComposedLetter:
    """Convert the rendered DOCX to PDF/A-2b and write the letter's metadata into its XMP (no database)."""
    if prepared.docx is None:
        raise ValueError("the letter was rendered into a batch document; compose the batch")
    pdf = get_pool().convert(prepared.docx, pdfa=True)
    pdf = set_metadata(pdf, **dataclasses.asdict(letter_metadata(prepared)))
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        pages = len(doc.pages)
    return ComposedLetter(prepared=prepared, pdf=pdf, pages=pages)


def archive_letter(session: Session, *, actor: User, composed: ComposedLetter,
                   batch_id: str | None = None) -> Letter:
    """Store the PDF as the customer's `letter` document, write the letter and its ledger rows, emit
    `letter.created`."""
    (letter_id,) = archive_letters(session, actor=actor, composed=[composed], batch_id=batch_id)
    return session.get(Letter, letter_id)


def archive_letters(session: Session, *, actor: User, composed: Sequence[ComposedLetter],
                    batch_id: str | None = None, batch_rows: Sequence[int] | None = None) -> list[str]:
    """Archive many composed letters in the caller's transaction: each PDF becomes the customer's `letter`
    document (`create_documents`, in bulk), with its letter row, ledger rows, delivery events, audit row and
    `letter.created` event; returns the letter ids. `batch_rows` ties each letter to its batch row (unique)."""
    if not composed:
        return []
    settings = get_settings()
    now = utcnow()
    wanted = sorted({c.prepared.customer_id for c in composed})
    # Locked, so two letters to one customer count each other against the marketing cap (PostgreSQL; SQLite's
    # writing transaction holds the database's write lock anyway).
    customers = {c.id: c for c in session.execute(select(Customer).where(Customer.id.in_(wanted))
                                                  .order_by(Customer.id).with_for_update()  # one lock order
                                                  .execution_options(populate_existing=True)).scalars()}
    plans: list[list[policy.Plan]] = []
    counted: dict[tuple[str, str], int] = {}  # marketing letters per (customer, category) earlier in this call
    for item in composed:
        customer = customers.get(item.prepared.customer_id)
        if customer is None:
            raise NotFoundError(f"customer {item.prepared.customer_id} not found")
        scope = (customer.id, item.prepared.category)
        chosen = policy.choose(session, settings=settings, customer=customer, category=item.prepared.category,
                               override=item.prepared.channel, now=now, pending=counted.get(scope, 0))
        if policy.counts_against_cap(settings, item.prepared.category, chosen):
            counted[scope] = counted.get(scope, 0) + 1
        plans.append(chosen)
    items = [NewDocument(title=f"Letter {c.prepared.reference} ({c.prepared.template_name})",
                         content=stage_stream(iter([c.pdf]), max_bytes=max(settings.max_upload_bytes, len(c.pdf)),
                                              tmp_dir=settings.tmp_dir, filename=f"{c.prepared.reference}.pdf"),
                         customer_id=c.prepared.customer_id,
                         metadata=_archive_metadata(c, [p.channel for p in plan], batch_id),
                         comment="archived as composed")
             for c, plan in zip(composed, plans, strict=True)]
    try:
        documents = create_documents(session, actor=actor, document_type=LETTER_TYPE, items=items)
    finally:
        for item in items:
            item.content.release()  # a big letter was spooled to a temp file
    letters, dispatches, delivered, news, trail = [], [], [], [], []
    for index, (item, plan, document_id) in enumerate(zip(composed, plans, documents, strict=True)):
        p = item.prepared
        channels = [row.channel for row in plan]
        letters.append({"id": p.letter_id, "reference": p.reference, "customer_id": p.customer_id,
                        "template_id": p.template_id, "template_name": p.template_name,
                        "template_version": p.template_version, "category": p.category,
                        "data_sha256": p.data_sha256, "document_id": document_id, "pages": item.pages,
                        "status": status_of([(r.channel, r.state, 0) for r in plan]), "batch_id": batch_id,
                        "batch_row": batch_rows[index] if batch_rows is not None else None,
                        "created_by": actor.id, "created_at": now, "updated_at": now})
        for row in plan:
            dispatch_id = new_id()
            dispatches.append({"id": dispatch_id, "letter_id": p.letter_id, "channel": row.channel,
                               "idempotency_key": f"{p.letter_id}:{row.channel}", "state": row.state, "attempts": 0,
                               "next_attempt_at": row.next_attempt_at if row.state == QUEUED else None,
                               "reason": row.reason, "created_at": now, "updated_at": now})
            delivered.append({"dispatch_id": dispatch_id, "letter_id": p.letter_id, "customer_id": p.customer_id,
                              "kind": row.state, "at": now, "detail": (row.reason or "")[:2000]})
            if row.state in names.BY_KIND:
                news.append((names.BY_KIND[row.state], {"letter_id": p.letter_id, "customer_id": p.customer_id,
                                                        "document_id": document_id,
                                                        "channel": row.channel, "dispatch_id": dispatch_id,
                                                        "detail": (row.reason or "")[:500]}))
        trail.append({"actor": actor.username, "action": names.LETTER_CREATED, "object_type": "letter",
                      "object_id": p.letter_id, "details": {
                          "reference": p.reference, "customer_id": p.customer_id, "template": p.template_name,
                          "template_version": p.template_version, "document_id": document_id,
                          "channels": channels}})
        news.append((names.LETTER_CREATED, {"letter_id": p.letter_id, "customer_id": p.customer_id,
                                            "document_id": document_id, "channels": channels,
                                            "category": p.category}))
    session.execute(insert(Letter.__table__), letters)
    session.execute(insert(Dispatch.__table__), dispatches)
    session.execute(insert(DeliveryEvent.__table__), delivered)
    audit.record_many(session, trail)
    events.emit_many(session, news)
    return [c.prepared.letter_id for c in composed]


def _archive_metadata(composed: ComposedLetter, channels: list[str], batch_id: str | None) -> dict[str, Any]:
    p = composed.prepared
    return {"letter_id": p.letter_id, "reference": p.reference, "template_id": p.template_id,
            "template_name": p.template_name, "template_version": p.template_version, "data_sha256": p.data_sha256,
            "batch_id": batch_id, "channels": channels, "category": p.category, "pages": composed.pages}


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
                                                   "document_id": letter.document_id,
                                                   "channel": row.channel, "dispatch_id": row.id,
                                                   "detail": detail[:500]})


def status_of(rows: Sequence[tuple[str, str, int]]) -> str:
    """A letter's status from its ledger rows as (channel, state, attempts): done or failed once every row has
    settled, dispatching once one has been tried, composed before."""
    polled = {"print"}  # channels whose `sent` is followed up to delivered or failed
    settled = [state in FINAL_STATES or (state == SENT and channel not in polled) for channel, state, _a in rows]
    if rows and all(settled):
        good = any(state in ("delivered", SENT) for _c, state, _a in rows) or all(
            state == SUPPRESSED for _c, state, _a in rows)
        return DONE if good else FAILED
    if any(attempts or state != QUEUED for _c, state, attempts in rows if state != SUPPRESSED):
        return DISPATCHING
    return COMPOSED


def refresh_status(session: Session, letter: Letter) -> None:
    """The letter's status from its ledger rows (see status_of)."""
    session.flush()
    rows = session.execute(select(Dispatch.channel, Dispatch.state, Dispatch.attempts)
                           .where(Dispatch.letter_id == letter.id)).all()
    status = status_of([tuple(r) for r in rows])
    if status != letter.status:
        letter.status, letter.updated_at = status, utcnow()


def get_letter(session: Session, *, actor: User, letter_id: str) -> Letter:
    """The letter if the caller may read its archived document; LetterNotFoundError otherwise."""
    letter = session.get(Letter, letter_id)
    if letter is None:
        raise LetterNotFoundError(f"letter {letter_id} not found")
    document = session.get(Document, letter.document_id)
    if document is None or not readable(session, actor, document):
        raise deny_read(actor, "letter", letter_id)
    return letter


def ledger(session: Session, *, letter_id: str) -> tuple[list[Dispatch], list[DeliveryEvent]]:
    """A letter's ledger rows and delivery events, oldest first (access must already be checked)."""
    rows = list(session.execute(select(Dispatch).where(Dispatch.letter_id == letter_id)
                                .order_by(Dispatch.created_at, Dispatch.channel)).scalars())
    found = list(session.execute(select(DeliveryEvent).where(DeliveryEvent.letter_id == letter_id)
                                 .order_by(DeliveryEvent.id)).scalars())
    return rows, found
