"""The file plan: classes and rules, validation, type mapping, and rule changes recomputing due dates."""

from __future__ import annotations

import datetime as dt

import pytest
from dateutil.relativedelta import relativedelta
from sqlalchemy import select

from records.errors import DuplicateClassError, InvalidRuleError
from records.service import fileplan
from repository.db import transaction
from repository.errors import PermissionDeniedError
from repository.models import AuditEntry
from tests.records.support import deliver, info, make_class, make_document, start, user

pytestmark = pytest.mark.usefixtures("repo")


@pytest.fixture
def people():  # noqa: ANN201
    start()
    return user("rita", "records_manager"), user("alice", "author")


@pytest.mark.parametrize(("change", "field"), [
    ({"trigger": "whenever"}, "trigger"),
    ({"trigger": "event"}, "event_type"),
    ({"event_type": "account_closed"}, "event_type"),
    ({"period_value": -1}, "period_value"),
    ({"period_unit": "weeks"}, "period_unit"),
    ({"cutoff": "lunar_year"}, "cutoff"),
    ({"action": "shred"}, "action"),
    ({"title": " "}, "title"),
])
def test_a_malformed_rule_is_refused_naming_the_field(people, change, field) -> None:  # noqa: ANN001
    manager, _ = people
    values = {"title": "Accounts", "trigger": "created", "period_value": 7, "period_unit": "years",
              "action": "destroy", **change}
    with pytest.raises(InvalidRuleError) as err, transaction() as session:
        fileplan.create_class(session, actor=manager, code="ACC", **values)
    assert err.value.extra["field"] == field
    with transaction(readonly=True) as session:
        assert fileplan.list_classes(session) == []


def test_codes_are_unique_and_classes_nest_without_cycles(people) -> None:  # noqa: ANN001
    manager, _ = people
    parent = make_class(manager, "FIN")
    child = make_class(manager, "FIN-01", parent="FIN")
    with pytest.raises(DuplicateClassError), transaction() as session:
        fileplan.create_class(session, actor=manager, code="FIN", title="Again", trigger="created",
                              period_value=1, period_unit="years", action="destroy")
    with pytest.raises(InvalidRuleError, match="under itself"), transaction() as session:
        fileplan.update_class(session, actor=manager, class_id=parent, reason="tidy", parent="FIN-01")
    with transaction(readonly=True) as session:
        assert fileplan.get_class(session, class_ref="FIN-01").parent_id == parent
        assert fileplan.get_class(session, class_ref=child).code == "FIN-01"


def test_only_records_managers_shape_the_file_plan(people) -> None:  # noqa: ANN001
    _, author = people
    with pytest.raises(PermissionDeniedError), transaction() as session:
        fileplan.create_class(session, actor=author, code="X", title="X", trigger="created", period_value=1,
                              period_unit="years", action="destroy")


def test_a_mapped_type_files_new_documents_with_a_due_date(people) -> None:  # noqa: ANN001
    manager, author = people
    make_class(manager, "GEN", ["general"], period_value=6, period_unit="years", cutoff="calendar_year")
    document_id = make_document(author)
    row = info(document_id)
    created = row.trigger_at
    assert row.class_id is not None
    assert row.due_at == dt.datetime(created.year + 7, 1, 1, tzinfo=dt.UTC)


def test_a_type_files_in_one_class_and_remapping_moves_it(people) -> None:  # noqa: ANN001
    manager, _ = people
    first = make_class(manager, "A", ["general"])
    second = make_class(manager, "B", ["general", "letter"])
    with transaction(readonly=True) as session:
        assert fileplan.types_of(session, first) == []
        assert fileplan.types_of(session, second) == ["general", "letter"]
    with pytest.raises(InvalidRuleError, match="no such document type: nonsense"), transaction() as session:
        fileplan.map_document_types(session, actor=manager, class_id=first, document_types=["general", "nonsense"])
    with transaction(readonly=True) as session:
        assert fileplan.types_of(session, second) == ["general", "letter"]


def test_changing_the_rule_recomputes_due_dates_and_is_audited(people) -> None:  # noqa: ANN001
    manager, author = people
    class_id = make_class(manager, "GEN", ["general"], period_value=1, period_unit="years")
    ids = [make_document(author, data=f"doc {i}".encode()) for i in range(3)]
    before = {i: info(i) for i in ids}
    with transaction() as session:
        cls = fileplan.update_class(session, actor=manager, class_id=class_id, reason="regulator asked for 10y",
                                    period_value=10)
        assert cls.rule_revision == 2
    for document_id in ids:
        row = info(document_id)
        assert row.due_at == before[document_id].trigger_at + relativedelta(years=10)
    with transaction(readonly=True) as session:
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "records.class_updated")).scalar_one()
    assert entry.details["old"]["period_value"] == 1 and entry.details["new"]["period_value"] == 10
    assert entry.details["recomputed"] == 3 and entry.details["reason"] == "regulator asked for 10y"


def test_a_trigger_change_restarts_clocks_from_the_new_trigger(people) -> None:  # noqa: ANN001
    manager, author = people
    class_id = make_class(manager, "GEN", ["general"])
    document_id = make_document(author)
    assert info(document_id).due_at is not None
    with transaction() as session:
        fileplan.update_class(session, actor=manager, class_id=class_id, reason="count from declaration",
                              trigger="declared")
    row = info(document_id)
    assert row.trigger_at is None and row.due_at is None
    deliver()


def test_a_class_change_needs_a_reason_and_something_to_change(people) -> None:  # noqa: ANN001
    manager, _ = people
    class_id = make_class(manager, "GEN")
    with pytest.raises(Exception, match="reason"), transaction() as session:
        fileplan.update_class(session, actor=manager, class_id=class_id, reason=" ", period_value=3)
    with pytest.raises(InvalidRuleError, match="cannot change code"), transaction() as session:
        fileplan.update_class(session, actor=manager, class_id=class_id, reason="x", code="NEW")
