"""A customer whose documents an erasure request must treat differently: one plain document, one under a legal
hold, a declared record of a class with a legal basis, a declared record of a class without one, and an
undeclared document of that class."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from records.models import HoldItem, LegalHold, RecordInfo
from records.service import declaration, fileplan
from records.service.classification import ensure_info
from repository import service
from repository.db import transaction
from repository.models import Document
from tests.conftest import Account
from tests.repository.helpers import staged

LEGAL_BASIS = "HMRC record keeping, 6 years"


@dataclass
class Scenario:
    """Who acts, the customer, and the documents by what an erasure request must do with them."""

    manager: Account
    helpdesk: Account
    author: Account
    customer_id: str
    plain: str  # erased
    held: str  # kept: legal_hold
    obligation: str  # kept: legal_obligation, until its due date
    record: str  # kept: retention (declared, class without legal basis)
    unrecorded: str  # erased: its class has no legal basis and it is not declared
    hold_id: str
    obligation_due: dt.datetime


def add_document(author: Account, customer_id: str, document_type: str, body: bytes) -> str:
    """A customer document of the given type, classified at once (as the outbox would)."""
    with transaction() as s:
        document = service.create_document(s, actor=author.user, title=f"{document_type} doc",
                                           document_type=document_type, content=staged(body),
                                           customer_id=customer_id)
        s.flush()
        ensure_info(s, document)
        return document.id


def place_hold(manager: Account, document_id: str) -> str:
    """An active legal hold over one document, inserted as rows (holds are built by another service)."""
    with transaction() as s:
        hold = LegalHold(name="Smith v Postroom", reason="litigation", matter_ref="M-1",
                         created_by=manager.user.username)
        s.add(hold)
        s.flush()
        s.add(HoldItem(hold_id=hold.id, document_id=document_id, source="document",
                       added_by=manager.user.username, versions=["1.0"]))
        return hold.id


def build(make_user) -> Scenario:  # noqa: ANN001
    """Users, a file plan (correspondence: legal basis; letter: none), the customer and five documents."""
    manager = make_user("rita", "records_manager")
    helpdesk = make_user("hal", "helpdesk")
    author = make_user("alice", "author")
    with transaction() as s:
        customer_id = service.create_customer(s, actor=author.user, external_ref="C-ERASE", name="Erin Erase").id
        statutory = fileplan.create_class(s, actor=manager.user, code="FIN-6", title="Tax correspondence",
                                          trigger="created", period_value=6, period_unit="years", action="review",
                                          legal_basis=LEGAL_BASIS)
        fileplan.map_document_types(s, actor=manager.user, class_id=statutory.id, document_types=["correspondence"])
        plain = fileplan.create_class(s, actor=manager.user, code="LET-2", title="Letters", trigger="created",
                                      period_value=2, period_unit="years", action="destroy")
        fileplan.map_document_types(s, actor=manager.user, class_id=plain.id, document_types=["letter"])
    docs = {name: add_document(author, customer_id, kind, f"{name} content".encode())
            for name, kind in [("plain", "general"), ("held", "general"), ("obligation", "correspondence"),
                               ("record", "letter"), ("unrecorded", "letter")]}
    with transaction() as s:
        for name in ("obligation", "record"):
            declaration.declare(s, actor=manager.user, document_id=docs[name])
    hold_id = place_hold(manager, docs["held"])
    with transaction(readonly=True) as s:
        due = s.get(RecordInfo, docs["obligation"]).due_at
    return Scenario(manager, helpdesk, author, customer_id, hold_id=hold_id, obligation_due=due, **docs)


def customer_documents(customer_id: str) -> list[Document]:
    """Every document row of the customer, whatever its state."""
    with transaction(readonly=True) as s:
        rows = list(s.execute(select(Document).where(Document.customer_id == customer_id)).scalars())
        for row in rows:
            s.expunge(row)
        return rows
