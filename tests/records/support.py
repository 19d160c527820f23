"""Helpers for records tests: users, classes, documents, outbox delivery and records time."""

from __future__ import annotations

import datetime as dt
from typing import Any

from records import clock
from records import events as records_events
from records.models import RecordInfo
from records.service import fileplan
from repository import events, identity, service
from repository.db import get_engine, transaction
from repository.models import Document, User
from tests.repository.helpers import staged


def user(username: str, *roles: str) -> User:
    """A staff user, detached from its session."""
    with transaction() as session:
        found = identity.create_user(session, username=username, password="correct-horse-battery",
                                     roles=list(roles), actor="test")
        session.flush()
        session.expunge(found)
    return found


def start() -> None:
    """Register records' guard and subscribers, on real time."""
    records_events.register()
    clock.reset()


def deliver() -> None:
    """Deliver every pending outbox event (classification, clocks)."""
    while events.deliver_pending(get_engine()):
        pass


def make_class(manager: User, code: str, types: list[str] | None = None, **rule: Any) -> str:
    """A class with a rule (default: destroy 1 year after creation), mapped to the given document types."""
    values = {"title": f"Class {code}", "trigger": "created", "period_value": 1, "period_unit": "years",
              "action": "destroy", **rule}
    with transaction() as session:
        cls = fileplan.create_class(session, actor=manager, code=code, **values)
        if types:
            fileplan.map_document_types(session, actor=manager, class_id=cls.id, document_types=types)
        return cls.id


def make_document(author: User, *, document_type: str = "general", customer_id: str | None = None,
                  data: bytes = b"records test content", metadata: dict | None = None) -> str:
    """Upload a document and deliver the outbox so it is classified; returns its id."""
    with transaction() as session:
        doc = service.create_document(session, actor=author, title="Records test", document_type=document_type,
                                      content=staged(data), customer_id=customer_id, metadata=metadata)
        document_id = doc.id
    deliver()
    return document_id


def make_customer(actor: User, ref: str = "C-1") -> str:
    """A customer; returns its id."""
    with transaction() as session:
        return service.create_customer(session, actor=actor, external_ref=ref, name="Ada Lovelace").id


def info(document_id: str) -> RecordInfo:
    """A document's records row, detached."""
    with transaction(readonly=True) as session:
        row = session.get(RecordInfo, document_id)
        if row is not None:
            session.expunge(row)
        return row


def document(document_id: str) -> Document:
    """A document row, detached."""
    with transaction(readonly=True) as session:
        row = session.get(Document, document_id)
        session.expunge(row)
        return row


def at(*args: int) -> dt.datetime:
    """A UTC time."""
    return dt.datetime(*args, tzinfo=dt.UTC)
