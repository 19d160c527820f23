"""Declared records: content and versions frozen, deletion refused, metadata changes audited, the filing date
fixed; automatic declaration per class; the guard also refuses deleting held documents."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select, update

from records.errors import LegalHoldActiveError, RecordDeclaredError, RecordsError
from records.models import HoldItem, LegalHold
from records.service import declaration
from repository import service
from repository.db import transaction
from repository.errors import PermissionDeniedError
from repository.models import AuditEntry
from tests.records.support import info, make_class, make_document, start, user
from tests.repository.helpers import staged

pytestmark = pytest.mark.usefixtures("repo")


@pytest.fixture
def people():  # noqa: ANN201
    start()
    return user("rita", "records_manager"), user("alice", "author"), user("hugo", "helpdesk")


def _declare(actor, document_id: str):  # noqa: ANN001, ANN202
    with transaction() as session:
        return declaration.declare(session, actor=actor, document_id=document_id)


def test_a_record_refuses_check_out_check_in_working_copies_and_delete(people) -> None:  # noqa: ANN001
    manager, author, _ = people
    document_id = make_document(author)
    _declare(author, document_id)
    refused = [
        lambda s: service.checkout(s, actor=author, document_id=document_id),
        lambda s: service.trash_document(s, actor=author, document_id=document_id),
        lambda s: service.prepare_upload(s, actor=author, document_id=document_id),
    ]
    for attempt in refused:
        with pytest.raises(RecordDeclaredError, match="is a record"), transaction() as session:
            attempt(session)
    with transaction(readonly=True) as session:
        versions = service.list_versions(session, actor=author, document_id=document_id)
        assert [v.label for v in versions] == ["1.0"]
        assert service.get_document(session, actor=author, document_id=document_id).state == "active"


def test_a_record_checked_out_before_cannot_be_declared_until_checked_in(people) -> None:  # noqa: ANN001
    _, author, _ = people
    document_id = make_document(author)
    with transaction() as session:
        service.checkout(session, actor=author, document_id=document_id)
    with pytest.raises(RecordsError, match="checked out"):
        _declare(author, document_id)
    with transaction() as session:
        service.checkin(session, document_id=document_id, actor=author, content=staged(b"final text"))
    _declare(author, document_id)
    # a check-in attempt on the record now fails even with new content in hand
    with pytest.raises(RecordDeclaredError), transaction() as session:
        service.checkin(session, document_id=document_id, actor=author, content=staged(b"sneaky change"))


def test_metadata_changes_are_audited_with_old_and_new_and_the_filing_date_stays(people) -> None:  # noqa: ANN001
    _, author, _ = people
    document_id = make_document(author, metadata={"ref": "A1"})
    _declare(author, document_id)
    filed = info(document_id).declared_at
    with transaction() as session:
        service.update_document(session, actor=author, document_id=document_id, expected_revision=None,
                                metadata={"ref": "A2", "declared_at": "1999-01-01"})
    assert info(document_id).declared_at == filed
    with transaction(readonly=True) as session:
        entry = session.execute(select(AuditEntry).where(AuditEntry.action == "document.updated",
                                                         AuditEntry.object_id == document_id)).scalar_one()
    assert entry.details["old"]["metadata"] == {"ref": "A1"}
    assert entry.details["new"]["metadata"]["ref"] == "A2"


def test_declaring_twice_or_without_write_access_is_refused(people) -> None:  # noqa: ANN001
    manager, author, helpdesk = people
    document_id = make_document(author)
    with pytest.raises(PermissionDeniedError):
        _declare(helpdesk, document_id)
    assert info(document_id).declared_at is None
    _declare(manager, document_id)
    with pytest.raises(RecordDeclaredError, match="already declared"):
        _declare(author, document_id)


def test_a_class_can_declare_automatically_and_start_its_clock_then(people) -> None:  # noqa: ANN001
    manager, author, _ = people
    make_class(manager, "CONTRACTS", ["general"], trigger="declared", auto_declare=True, period_value=2,
               period_unit="years")
    document_id = make_document(author)
    row = info(document_id)
    assert row.declared_by == "system:records"
    assert row.trigger_at == row.declared_at and row.due_at.year == row.declared_at.year + 2
    with pytest.raises(RecordDeclaredError), transaction() as session:
        service.checkout(session, actor=author, document_id=document_id)


def test_a_declared_trigger_waits_for_declaration(people) -> None:  # noqa: ANN001
    manager, author, _ = people
    make_class(manager, "CONTRACTS", ["general"], trigger="declared", period_value=5, period_unit="years")
    document_id = make_document(author)
    assert info(document_id).due_at is None
    _declare(author, document_id)
    row = info(document_id)
    assert row.due_at is not None and row.due_at.year == row.declared_at.year + 5


def test_a_held_document_cannot_be_deleted_until_every_hold_is_released(people) -> None:  # noqa: ANN001
    manager, author, _ = people
    document_id = make_document(author)
    with transaction() as session:
        for hold_id in ("h1", "h2"):
            session.execute(insert(LegalHold).values(id=hold_id, name=hold_id, reason="litigation",
                                                     created_by="rita", state="active"))
            session.execute(insert(HoldItem).values(hold_id=hold_id, document_id=document_id, source="document",
                                                    added_by="rita", versions=["1.0"]))
    with pytest.raises(LegalHoldActiveError, match="h1, h2"), transaction() as session:
        service.trash_document(session, actor=author, document_id=document_id)
    with transaction() as session:
        session.execute(update(HoldItem).where(HoldItem.hold_id == "h1").values(released_at=HoldItem.added_at))
    with pytest.raises(LegalHoldActiveError, match="h2"), transaction() as session:
        service.trash_document(session, actor=author, document_id=document_id)
    with transaction() as session:
        session.execute(update(HoldItem).where(HoldItem.hold_id == "h2").values(released_at=HoldItem.added_at))
        service.trash_document(session, actor=author, document_id=document_id)
    # a held document's content may still change (only records are frozen)
