"""Classification and retention clocks: a new document is filed in its type's class (through the outbox), its
clock starts on the class's trigger, and its due date follows the rule; records managers reclassify or extend."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from records import clock
from records import events as names
from records.errors import DispositionStateError, InvalidRuleError, LegalHoldActiveError, RecordsNotFoundError
from records.models import (
    CREATED,
    DECLARED,
    EVENT,
    LETTER_SENT,
    BusinessEvent,
    ErasureRequest,
    RecordInfo,
    RetentionClass,
)
from records.retention import due_date, fiscal_start
from records.service.common import SYSTEM, active_holds, note, require_records_manager
from records.service.fileplan import class_of_type, get_class, rule_of
from repository.config import get_settings
from repository.errors import InvalidInputError
from repository.models import Customer, Document, OutboxEvent, User
from repository.service.documents import DESTROYED, get_document
from repository.types import utcnow

OPEN = ("active", "pending", "review")  # dispositions whose due dates still matter
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_.-]{0,99}$")
_CHUNK = 1000


def _fiscal() -> tuple[int, int]:
    return fiscal_start(get_settings().fiscal_year_start)


def due_for(cls: RetentionClass | None, trigger_at: dt.datetime | None) -> dt.datetime | None:
    """When a document of this class whose clock started at `trigger_at` falls due."""
    return None if cls is None else due_date(trigger_at, rule_of(cls), _fiscal())


def within_erasure(due: dt.datetime | None, *, erasure_at: dt.datetime | None, declared: bool,
                   cls: RetentionClass | None) -> dt.datetime | None:
    """The due date of a document an erasure request restricted: one it kept only because of a legal hold stays
    due from the request whatever its rule says later; a record, or a class with a legal basis, keeps its
    retention (the request erases it when that ends)."""
    if erasure_at is None or declared or (cls is not None and cls.legal_basis):
        return due
    return erasure_at if due is None or due > erasure_at else due


def _erasure_at(session: Session, info: RecordInfo) -> dt.datetime | None:
    request = session.get(ErasureRequest, info.erasure_id) if info.erasure_id else None
    return request.requested_at if request is not None else None


def due_of(session: Session, info: RecordInfo, cls: RetentionClass | None,
           trigger_at: dt.datetime | None) -> dt.datetime | None:
    """When this document falls due with its clock started at `trigger_at`: its class's rule, within what an
    erasure request promised."""
    return within_erasure(due_for(cls, trigger_at), erasure_at=_erasure_at(session, info),
                          declared=info.declared_at is not None, cls=cls)


def _last_event(session: Session, customer_id: str | None, event_type: str | None) -> dt.datetime | None:
    if customer_id is None or event_type is None:
        return None
    return session.execute(select(func.max(BusinessEvent.occurred_at)).where(
        BusinessEvent.customer_id == customer_id, BusinessEvent.type == event_type)).scalar()


def trigger_of(session: Session, cls: RetentionClass | None, *, created_at: dt.datetime,
               declared_at: dt.datetime | None, customer_id: str | None,
               sent_at: dt.datetime | None = None) -> dt.datetime | None:
    """When a document's clock started under a class's trigger, or None while it has not."""
    if cls is None:
        return None
    if cls.trigger == CREATED:
        return created_at
    if cls.trigger == DECLARED:
        return declared_at
    if cls.trigger == EVENT:
        return _last_event(session, customer_id, cls.event_type)
    return sent_at if cls.trigger == LETTER_SENT else None


def protect(session: Session, info: RecordInfo) -> None:
    """Keep a declared record's S3 Object Lock in step with its due date (only on S3 with locking on)."""
    settings = get_settings()
    if info.declared_at is None or settings.blob_store != "s3" or settings.s3_object_lock == "off":
        return
    from records.service import object_lock  # S3-only; imported when needed

    object_lock.protect(session, document_id=info.document_id)


def ensure_info(session: Session, document: Document) -> RecordInfo:
    """The document's records row, classifying it by its type's class first if it has none. A class that
    declares automatically declares the document now."""
    info = session.get(RecordInfo, document.id)
    if info is not None:
        return info
    cls = class_of_type(session, document.document_type_id)
    now = clock.now()
    trigger = trigger_of(session, cls, created_at=document.created_at, declared_at=None,
                         customer_id=document.customer_id)
    info = RecordInfo(document_id=document.id, class_id=cls.id if cls else None, customer_id=document.customer_id,
                      classified_at=now, trigger_at=trigger, due_at=due_for(cls, trigger), disposition="active",
                      updated_at=now)
    session.add(info)
    session.flush()
    if cls is not None:
        note(session, actor=SYSTEM, action=names.RECORD_CLASSIFIED, object_type="document", object_id=document.id,
             details={"class": cls.code, "due_at": _iso(info.due_at)}, event=names.RECORD_CLASSIFIED,
             payload={"document_id": document.id, "class_id": cls.id})
        if cls.auto_declare and document.state == "active":
            from records.service.declaration import mark_declared  # declaration builds on classification

            mark_declared(session, info, actor=SYSTEM)
    return info


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def on_document_created(session: Session, event: OutboxEvent) -> None:
    """Outbox subscriber: file a new document in its type's class."""
    document = session.get(Document, event.payload.get("document_id"))
    if document is not None and document.state != DESTROYED:
        ensure_info(session, document)


def on_letter_sent(session: Session, event: OutboxEvent) -> None:
    """Outbox subscriber: a letter went out; start the clock of its archived document if its class counts from
    sending (the first send counts; a later channel does not restart it)."""
    document = session.get(Document, event.payload.get("document_id") or "")
    if document is None or document.state == DESTROYED:
        return
    info = ensure_info(session, document)
    cls = session.get(RetentionClass, info.class_id) if info.class_id else None
    if cls is None or cls.trigger != LETTER_SENT or info.trigger_at is not None or info.disposition not in OPEN:
        return
    _start_clock(session, info, cls, event.created_at, why="letter sent")


def _start_clock(session: Session, info: RecordInfo, cls: RetentionClass, at: dt.datetime, *, why: str) -> None:
    info.trigger_at, info.due_at, info.updated_at = at, due_of(session, info, cls, at), clock.now()
    note(session, actor=SYSTEM, action=names.RECORD_CLOCK_STARTED, object_type="document",
         object_id=info.document_id, details={"why": why, "trigger_at": at.isoformat(), "due_at": _iso(info.due_at)},
         event=names.RECORD_CLOCK_STARTED, payload={"document_id": info.document_id, "due_at": _iso(info.due_at)})
    protect(session, info)


def _rows_of_class(session: Session, class_id: str) -> Iterator[list[Any]]:
    after = ""
    while True:
        rows = session.execute(
            select(RecordInfo.document_id, RecordInfo.trigger_at, RecordInfo.declared_at, RecordInfo.customer_id,
                   RecordInfo.due_at, Document.created_at, ErasureRequest.requested_at.label("erasure_at"))
            .join(Document, Document.id == RecordInfo.document_id)
            .outerjoin(ErasureRequest, ErasureRequest.id == RecordInfo.erasure_id)
            .where(RecordInfo.class_id == class_id, RecordInfo.disposition.in_(OPEN), RecordInfo.document_id > after)
            .order_by(RecordInfo.document_id).limit(_CHUNK)).all()
        if not rows:
            return
        yield rows
        after = rows[-1].document_id


_SET_DUE = (update(RecordInfo).where(RecordInfo.document_id == bindparam("doc"))
            .values(trigger_at=bindparam("trigger"), due_at=bindparam("due"), updated_at=bindparam("now")))


def recompute_class(session: Session, *, cls: RetentionClass, trigger_changed: bool) -> int:
    """Recompute the due dates of every open document in the class after its rule changed; returns how many
    changed. Runs in chunks of 1,000 rows, each written with one executemany."""
    changed = 0
    now = clock.now()
    for rows in _rows_of_class(session, cls.id):
        updates, later = [], []
        for row in rows:
            trigger = row.trigger_at
            if trigger_changed:
                sent = row.trigger_at if cls.trigger == LETTER_SENT else None  # a send time is not kept elsewhere
                trigger = trigger_of(session, cls, created_at=row.created_at, declared_at=row.declared_at,
                                     customer_id=row.customer_id, sent_at=sent)
            due = within_erasure(due_for(cls, trigger), erasure_at=row.erasure_at,
                                 declared=row.declared_at is not None, cls=cls)
            if (trigger, due) != (row.trigger_at, row.due_at):
                updates.append({"doc": row.document_id, "trigger": trigger, "due": due, "now": now})
                if row.declared_at is not None and (row.due_at is None or (due is not None and due > row.due_at)):
                    later.append(row.document_id)
        if updates:
            session.connection().execute(_SET_DUE, updates)
            changed += len(updates)
        for document_id in later:
            protect(session, session.get(RecordInfo, document_id))
    return changed


def _open_info(session: Session, actor: User, document_id: str) -> RecordInfo:
    require_records_manager(actor)
    document = get_document(session, actor=actor, document_id=document_id)
    info = ensure_info(session, document)
    if info.disposition == "pending":
        raise DispositionStateError(f"document {document_id} is in a proposed disposition batch; exclude it "
                                    "from the batch first")
    if info.disposition not in OPEN:
        raise DispositionStateError(f"document {document_id} was already {info.disposition}")
    return info


def _reason(reason: str | None) -> str:
    if not (reason or "").strip():
        raise InvalidInputError("a reason is required", field="reason")
    return reason.strip()


def reclassify(session: Session, *, actor: User, document_id: str, class_ref: str, reason: str) -> RecordInfo:
    """Move a document to another class (records managers, with a reason); its due date follows the new rule.
    A held document may not be moved to an earlier destruction date."""
    reason = _reason(reason)
    info = _open_info(session, actor, document_id)
    try:
        cls = get_class(session, class_ref=class_ref)
    except RecordsNotFoundError as exc:
        raise InvalidRuleError(exc.detail, field="class") from exc
    old_cls = session.get(RetentionClass, info.class_id) if info.class_id else None
    document = session.get(Document, document_id)
    sent = info.trigger_at if old_cls is not None and old_cls.trigger == LETTER_SENT == cls.trigger else None
    trigger = trigger_of(session, cls, created_at=document.created_at, declared_at=info.declared_at,
                         customer_id=info.customer_id, sent_at=sent)
    due = due_of(session, info, cls, trigger)
    holds = active_holds(session, document_id)
    if holds and due is not None and (info.due_at is None or due < info.due_at):
        raise LegalHoldActiveError(f"document {document_id} is under legal hold ({', '.join(holds)}): it cannot be "
                                   "reclassified to an earlier destruction date", holds=holds)
    old = {"class": old_cls.code if old_cls else None, "due_at": _iso(info.due_at)}
    info.class_id, info.trigger_at, info.due_at = cls.id, trigger, due
    info.disposition, info.updated_at = "active", clock.now()
    note(session, actor=actor.username, action=names.RECORD_RECLASSIFIED, object_type="document",
         object_id=document_id, details={"old": old, "new": {"class": cls.code, "due_at": _iso(due)},
                                         "reason": reason},
         event=names.RECORD_RECLASSIFIED, payload={"document_id": document_id, "class_id": cls.id})
    protect(session, info)
    return info


def extend(session: Session, *, actor: User, document_id: str, until: dt.datetime, reason: str) -> RecordInfo:
    """Keep a document longer than its rule says (a review decision), until a later date, with a reason."""
    reason = _reason(reason)
    if until.tzinfo is None:
        raise InvalidInputError("until needs a time zone (such as 2031-01-01T00:00:00Z)", field="until")
    info = _open_info(session, actor, document_id)
    if until <= clock.now() or (info.due_at is not None and until <= info.due_at):
        raise InvalidInputError("until must be later than now and than the current due date", field="until")
    old = _iso(info.due_at)
    info.due_at, info.disposition, info.updated_at = until, "active", clock.now()
    note(session, actor=actor.username, action=names.RECORD_REVIEWED, object_type="document", object_id=document_id,
         details={"decision": "extend", "old_due_at": old, "due_at": until.isoformat(), "reason": reason},
         event=names.RECORD_REVIEWED, payload={"document_id": document_id, "decision": "extend"})
    protect(session, info)
    return info


def record_business_event(session: Session, *, actor: User, type: str, customer_id: str,  # noqa: A002
                          occurred_at: dt.datetime) -> tuple[BusinessEvent, int]:
    """Record a business event for a customer (such as account_closed) and start, or restart from this later
    date, the clocks of the customer's documents in classes triggered by it; returns the event and how many
    documents' due dates it set."""
    require_records_manager(actor)
    if not _EVENT_TYPE.match(type or ""):
        raise InvalidInputError("type must be an event name such as 'account_closed' (lower case letters, digits, "
                                "_ . -)", field="type")
    if occurred_at.tzinfo is None:
        raise InvalidInputError("occurred_at needs a time zone (such as 2026-01-31T17:00:00Z)", field="occurred_at")
    if occurred_at > clock.now() + dt.timedelta(minutes=5):
        raise InvalidInputError("occurred_at is in the future; record an event once it has happened",
                                field="occurred_at")
    if session.get(Customer, customer_id) is None:
        raise InvalidInputError(f"customer {customer_id} does not exist", field="customer_id")
    event = BusinessEvent(type=type, customer_id=customer_id, occurred_at=occurred_at, recorded_by=actor.username,
                          recorded_at=utcnow())
    session.add(event)
    session.flush()
    rows = session.execute(
        select(RecordInfo, RetentionClass).join(RetentionClass, RetentionClass.id == RecordInfo.class_id)
        .where(RecordInfo.customer_id == customer_id, RetentionClass.trigger == EVENT,
               RetentionClass.event_type == type, RecordInfo.disposition.in_(OPEN))).all()
    started = 0
    for info, cls in rows:
        if info.trigger_at is None or info.trigger_at < occurred_at:
            _start_clock(session, info, cls, occurred_at, why=f"business event {type}")
            started += 1
    note(session, actor=actor.username, action=names.BUSINESS_EVENT_RECORDED, object_type="customer",
         object_id=customer_id, details={"type": type, "occurred_at": occurred_at.isoformat(), "documents": started},
         event=names.BUSINESS_EVENT_RECORDED,
         payload={"event_id": event.id, "type": type, "customer_id": customer_id, "documents": started})
    return event, started
