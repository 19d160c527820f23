"""Retention clocks: business events, letters sent, reclassification and review extensions."""

from __future__ import annotations

import datetime as dt

import pytest
from dateutil.relativedelta import relativedelta
from sqlalchemy import insert, select

from records import clock
from records.errors import DispositionStateError, LegalHoldActiveError
from records.models import HoldItem, LegalHold, RecordInfo
from records.service import classification
from repository import events
from repository.db import transaction
from repository.errors import InvalidInputError, PermissionDeniedError
from repository.models import AuditEntry
from tests.records.support import at, deliver, info, make_class, make_customer, make_document, start, user

pytestmark = pytest.mark.usefixtures("repo")


@pytest.fixture
def people():  # noqa: ANN201
    start()
    yield user("rita", "records_manager"), user("alice", "author", "admin")
    clock.reset()


def _event(manager, customer_id: str, when: dt.datetime, kind: str = "account_closed") -> int:  # noqa: ANN001
    with transaction() as session:
        _, started = classification.record_business_event(session, actor=manager, type=kind,
                                                           customer_id=customer_id, occurred_at=when)
        return started


def test_a_business_event_starts_the_clocks_of_the_customers_documents(people) -> None:  # noqa: ANN001
    manager, author = people
    make_class(manager, "ACC", ["general"], trigger="event", event_type="account_closed", period_value=7,
               period_unit="years", cutoff="calendar_year")
    mine, other = make_customer(author, "C-1"), make_customer(author, "C-2")
    docs = [make_document(author, customer_id=mine, data=f"{i}".encode()) for i in range(2)]
    bystander = make_document(author, customer_id=other)
    assert info(docs[0]).due_at is None
    assert _event(manager, mine, at(2025, 6, 30)) == 2
    assert [info(d).due_at for d in docs] == [at(2033, 1, 1)] * 2
    assert info(bystander).due_at is None
    # an earlier event does not move the clock back; a later one (closed again) restarts it
    assert _event(manager, mine, at(2024, 1, 1)) == 0
    assert _event(manager, mine, at(2026, 2, 1)) == 2
    assert info(docs[0]).due_at == at(2034, 1, 1)
    # a document filed after the event counts from it at once
    late = make_document(author, customer_id=mine, data=b"late")
    assert info(late).due_at == at(2034, 1, 1)


def test_a_business_event_is_checked(people) -> None:  # noqa: ANN001
    manager, author = people
    customer = make_customer(author)
    for kind, customer_id, when, field in [
        ("Account Closed", customer, at(2025, 1, 1), "type"),
        ("account_closed", "nobody", at(2025, 1, 1), "customer_id"),
        ("account_closed", customer, clock.now() + dt.timedelta(days=2), "occurred_at"),
    ]:
        with pytest.raises(InvalidInputError) as err, transaction() as session:
            classification.record_business_event(session, actor=manager, type=kind, customer_id=customer_id,
                                                 occurred_at=when)
        assert err.value.extra["field"] == field
    with pytest.raises(PermissionDeniedError), transaction() as session:
        classification.record_business_event(session, actor=user("hugo", "helpdesk"), type="account_closed",
                                             customer_id=customer, occurred_at=at(2025, 1, 1))


def test_a_letter_class_counts_from_the_first_send(people) -> None:  # noqa: ANN001
    manager, author = people
    make_class(manager, "LTR", ["general"], trigger="letter_sent", period_value=6, period_unit="months")
    document_id = make_document(author)
    assert info(document_id).due_at is None
    with transaction() as session:
        events.emit(session, "letter.sent", {"letter_id": "L1", "document_id": document_id, "channel": "email"})
    deliver()
    first = info(document_id)
    assert first.due_at == first.trigger_at + relativedelta(months=6)
    with transaction() as session:
        events.emit(session, "letter.sent", {"letter_id": "L1", "document_id": document_id, "channel": "print"})
    deliver()
    assert info(document_id).trigger_at == first.trigger_at


def test_reclassification_is_audited_and_cannot_bring_a_held_document_forward(people) -> None:  # noqa: ANN001
    manager, author = people
    make_class(manager, "LONG", ["general"], period_value=10, period_unit="years")
    make_class(manager, "SHORT", period_value=1, period_unit="years")
    make_class(manager, "LONGER", period_value=20, period_unit="years")
    document_id = make_document(author)
    with transaction() as session:
        session.execute(insert(LegalHold).values(id="h1", name="h1", reason="claim", created_by="rita",
                                                 state="active"))
        session.execute(insert(HoldItem).values(hold_id="h1", document_id=document_id, source="document",
                                                added_by="rita", versions=["1.0"]))
    with pytest.raises(LegalHoldActiveError, match="earlier"), transaction() as session:
        classification.reclassify(session, actor=manager, document_id=document_id, class_ref="SHORT",
                                  reason="wrong class")
    with transaction() as session:
        classification.reclassify(session, actor=manager, document_id=document_id, class_ref="LONGER",
                                  reason="contract extended")
    row = info(document_id)
    assert row.due_at == row.trigger_at + relativedelta(years=20)
    with transaction(readonly=True) as session:
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "record.reclassified")).scalar_one()
    assert entry.details["old"]["class"] == "LONG" and entry.details["new"]["class"] == "LONGER"
    assert entry.actor == "rita" and entry.details["reason"] == "contract extended"


def test_reclassification_needs_a_reason_and_an_open_document(people) -> None:  # noqa: ANN001
    manager, author = people
    make_class(manager, "A", ["general"])
    make_class(manager, "B")
    document_id = make_document(author)
    with pytest.raises(InvalidInputError, match="reason"), transaction() as session:
        classification.reclassify(session, actor=manager, document_id=document_id, class_ref="B", reason="")
    with transaction() as session:
        session.get(RecordInfo, document_id).disposition = "pending"
    with pytest.raises(DispositionStateError, match="exclude"), transaction() as session:
        classification.reclassify(session, actor=manager, document_id=document_id, class_ref="B", reason="x")


def test_extending_keeps_a_document_later_with_a_reason(people) -> None:  # noqa: ANN001
    manager, author = people
    make_class(manager, "A", ["general"], action="review")
    document_id = make_document(author)
    due = info(document_id).due_at
    with transaction() as session:
        session.get(RecordInfo, document_id).disposition = "review"
    with pytest.raises(InvalidInputError, match="later"), transaction() as session:
        classification.extend(session, actor=manager, document_id=document_id, until=due - dt.timedelta(days=1),
                              reason="keep")
    with transaction() as session:
        classification.extend(session, actor=manager, document_id=document_id, until=due + relativedelta(years=3),
                              reason="litigation likely")
    row = info(document_id)
    assert row.due_at == due + relativedelta(years=3) and row.disposition == "active"
