"""Legal holds through the service: choosing documents by id, customer and metadata query, all-or-nothing adds,
several holds on one document, audited release, and who may manage holds (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from records import clock
from records.errors import HoldStateError, LegalHoldActiveError, RecordsNotFoundError
from records.models import HoldItem, LegalHold
from records.service import holds
from records.service.common import is_held
from records.service.destroy import destroy_with_tombstone
from repository import service
from repository.access import AccessDeniedError
from repository.db import transaction
from repository.errors import InvalidInputError, PermissionDeniedError
from repository.models import AuditEntry, Document, OutboxEvent
from repository.types import utcnow
from tests.records.support import at, make_customer, make_document, start, user
from tests.repository.helpers import staged


@pytest.fixture
def people(repo):  # noqa: ANN001, ANN201
    """A records manager, an author and a help-desk user, with records' guard registered."""
    start()
    yield user("rita", "records_manager"), user("alice", "author"), user("hugo", "helpdesk")
    clock.reset()


def new_hold(manager, name: str = "Smith v. Bank") -> str:  # noqa: ANN001
    with transaction() as session:
        return holds.create_hold(session, actor=manager, name=name, reason="litigation expected",
                                 matter_ref="M-42").id


def add(manager, hold_id: str, **how) -> holds.HoldAddition:  # noqa: ANN001, ANN003
    with transaction() as session:
        return holds.add_items(session, actor=manager, hold_id=hold_id, **how)


def release(manager, hold_id: str, reason: str = "case settled") -> None:  # noqa: ANN001
    with transaction() as session:
        holds.release_hold(session, actor=manager, hold_id=hold_id, reason=reason)


def held(document_id: str) -> bool:
    with transaction(readonly=True) as session:
        return is_held(session, document_id)


def items_of(hold_id: str) -> dict[str, HoldItem]:
    with transaction(readonly=True) as session:
        rows = list(session.execute(select(HoldItem).where(HoldItem.hold_id == hold_id)).scalars())
        session.expunge_all()
    return {r.document_id: r for r in rows}


def audits(action: str, object_id: str) -> list[AuditEntry]:
    with transaction(readonly=True) as session:
        rows = list(session.execute(select(AuditEntry).where(AuditEntry.action == action,
                                                             AuditEntry.object_id == object_id)).scalars())
        session.expunge_all()
    return rows


def set_created(document_id: str, when) -> None:  # noqa: ANN001
    with transaction() as session:
        session.get(Document, document_id).created_at = when


def test_by_ids_records_versions_and_reports_what_was_already_held(people) -> None:  # noqa: ANN001
    manager, author, _ = people
    first, second = make_document(author), make_document(author)
    with transaction() as session:
        service.checkout(session, actor=author, document_id=first)
        service.checkin(session, actor=author, document_id=first, content=staged(b"second version"))
    hold_id = new_hold(manager)

    done = add(manager, hold_id, document_ids=[first, second, first])
    assert done.added == [first, second] and done.already_held_here == [] and done.source == "document"
    again = add(manager, hold_id, document_ids=[second])
    assert again.added == [] and again.already_held_here == [second]

    items = items_of(hold_id)
    assert items[first].versions == ["1.0", "1.1"] and items[second].versions == ["1.0"]
    assert items[first].source == "document" and items[first].added_by == "rita"
    assert held(first) and held(second)
    entry = audits("hold.items_added", hold_id)[0]
    assert entry.actor == "rita" and entry.details["source"] == "document" and entry.details["added"] == 2
    with transaction(readonly=True) as session:
        names = set(session.execute(select(OutboxEvent.name)).scalars())
    assert {"hold.created", "hold.items_added"} <= names


def test_unknown_or_destroyed_ids_refuse_the_whole_call(people) -> None:  # noqa: ANN001
    manager, author, _ = people
    good, gone = make_document(author), make_document(author)
    with transaction() as session:
        destroy_with_tombstone(session, document_id=gone, actor="rita", approved_by="rita", action="destroy")
    hold_id = new_hold(manager)

    with pytest.raises(InvalidInputError) as caught:
        add(manager, hold_id, document_ids=[good, "no-such-document", gone])
    assert caught.value.extra["not_found"] == ["no-such-document", gone]
    assert "no-such-document" in caught.value.detail
    assert items_of(hold_id) == {} and not held(good)
    assert audits("hold.items_added", hold_id) == []


def test_trashed_documents_can_be_held(people) -> None:  # noqa: ANN001
    manager, author, _ = people
    trashed = make_document(author)
    with transaction() as session:
        service.trash_document(session, actor=author, document_id=trashed)
    hold_id = new_hold(manager)
    assert add(manager, hold_id, document_ids=[trashed]).added == [trashed]
    assert held(trashed)


def test_by_customer_holds_every_document_of_the_customer_but_destroyed_ones(people) -> None:  # noqa: ANN001
    manager, author, _ = people
    customer, other = make_customer(author, "C-1"), make_customer(author, "C-2")
    mine = [make_document(author, customer_id=customer) for _ in range(3)]
    theirs = make_document(author, customer_id=other)
    with transaction() as session:
        service.trash_document(session, actor=author, document_id=mine[1])
        destroy_with_tombstone(session, document_id=mine[2], actor="rita", approved_by="rita", action="destroy")
    hold_id = new_hold(manager)

    done = add(manager, hold_id, customer_id=customer)
    assert sorted(done.added) == sorted(mine[:2]) and done.source == "customer"
    assert not held(theirs) and not held(mine[2])
    assert audits("hold.items_added", hold_id)[0].details["customer_id"] == customer
    with pytest.raises(InvalidInputError, match="no customer"):
        add(manager, hold_id, customer_id="missing")


def test_by_query_matches_metadata_as_json_values_and_created_dates(people) -> None:  # noqa: ANN001
    manager, author, _ = people
    customer = make_customer(author)
    match = make_document(author, customer_id=customer, metadata={"policy": "P-1", "year": 2023, "open": True})
    string_year = make_document(author, metadata={"policy": "P-1", "year": "2023", "open": True})
    other_policy = make_document(author, metadata={"policy": "P-2", "year": 2023, "open": True})
    no_key = make_document(author, metadata={"year": 2023, "open": True})
    too_late = make_document(author, metadata={"policy": "P-1", "year": 2023, "open": True})
    for doc in (match, string_year, other_policy, no_key):
        set_created(doc, at(2024, 3, 15, 23, 30))
    set_created(too_late, at(2024, 3, 16, 0, 0))
    hold_id = new_hold(manager)

    query = {"meta": {"policy": "P-1", "year": 2023, "open": True}, "created_from": "2024-03-01",
             "created_to": "2024-03-15", "document_type": "general"}
    done = add(manager, hold_id, query=query)
    assert done.added == [match] and done.source == "query"
    assert audits("hold.items_added", hold_id)[0].details["query"] == query

    assert add(manager, hold_id, query={"meta": {"year": "2023"}}).added == [string_year]
    assert add(manager, hold_id, query={"created_to": "2024-03-16T00:00:00Z", "created_from": "2024-03-16"}
               ).added == [too_late]
    both = add(manager, hold_id, query={"customer_id": customer, "title_contains": "records TEST"})
    assert both.added == [] and both.already_held_here == [match]


@pytest.mark.parametrize(("query", "key"), [
    ({"colour": "red"}, "query.colour"),
    ({"created_from": "2024-13-01"}, "query.created_from"),
    ({"created_to": 20240101}, "query.created_to"),
    ({"created_from": "2024-03-02", "created_to": "2024-03-01"}, "query.created_to"),
    ({"meta": {"tags": ["a"]}}, "query.meta.tags"),
    ({"meta": {}}, "query.meta"),
    ({"document_type": "no-such-type"}, "query.document_type"),
    ({}, "query"),
])
def test_a_bad_query_names_its_key_and_writes_nothing(people, query, key) -> None:  # noqa: ANN001
    manager, author, _ = people
    make_document(author, metadata={"tags": ["a"]})
    hold_id = new_hold(manager)
    with pytest.raises(InvalidInputError) as caught:
        add(manager, hold_id, query=query)
    assert caught.value.extra["field"] == key
    assert items_of(hold_id) == {}


def test_exactly_one_way_of_choosing_and_the_cap(people, monkeypatch) -> None:  # noqa: ANN001
    manager, author, _ = people
    customer = make_customer(author)
    docs = [make_document(author, customer_id=customer) for _ in range(3)]
    hold_id = new_hold(manager)
    with pytest.raises(InvalidInputError, match="exactly one"):
        add(manager, hold_id, document_ids=docs, customer_id=customer)
    with pytest.raises(InvalidInputError, match="exactly one"):
        add(manager, hold_id)
    monkeypatch.setattr(holds, "MAX_PER_CALL", 2)
    with pytest.raises(InvalidInputError, match="at most 2"):
        add(manager, hold_id, customer_id=customer)
    with pytest.raises(InvalidInputError, match="at most 2"):
        add(manager, hold_id, document_ids=docs)
    assert items_of(hold_id) == {}


def test_a_document_is_free_only_when_all_its_holds_are_released(people) -> None:  # noqa: ANN001
    manager, author, _ = people
    doc = make_document(author)
    first, second = new_hold(manager, "first"), new_hold(manager, "second")
    add(manager, first, document_ids=[doc])
    add(manager, second, document_ids=[doc])

    clock.advance(dt.timedelta(days=3))
    release(manager, first, "first matter closed")
    assert held(doc)
    with transaction() as session, pytest.raises(LegalHoldActiveError, match=second):
        destroy_with_tombstone(session, document_id=doc, actor="rita", approved_by="rita", action="destroy")
    with pytest.raises(LegalHoldActiveError, match=second):
        with transaction() as session:
            service.trash_document(session, actor=author, document_id=doc)

    released = audits("hold.released", first)
    assert len(released) == 1 and released[0].details["reason"] == "first matter closed"
    assert released[0].details["items"] == 1 and released[0].actor == "rita"
    with transaction(readonly=True) as session:
        hold = session.get(LegalHold, first)
        assert hold.state == "released" and hold.released_by == "rita" and hold.release_reason == "first matter closed"
        assert hold.released_at > utcnow() + dt.timedelta(days=2)  # records time, which the test moved on
    assert items_of(first)[doc].released_at is not None and items_of(second)[doc].released_at is None

    release(manager, second)
    assert not held(doc)
    with transaction() as session:
        service.trash_document(session, actor=author, document_id=doc)


def test_released_hold_refuses_items_and_a_second_release(people) -> None:  # noqa: ANN001
    manager, author, _ = people
    doc = make_document(author)
    hold_id = new_hold(manager)
    release(manager, hold_id)
    with pytest.raises(HoldStateError, match="released"):
        add(manager, hold_id, document_ids=[doc])
    with pytest.raises(HoldStateError, match="already released"):
        release(manager, hold_id)
    with pytest.raises(InvalidInputError, match="reason"):
        release(manager, new_hold(manager), "  ")
    assert not held(doc)


def test_create_validates_name_and_reason(people) -> None:  # noqa: ANN001
    manager, _, _ = people
    with transaction() as session:
        with pytest.raises(InvalidInputError, match="name"):
            holds.create_hold(session, actor=manager, name="", reason="why")
        with pytest.raises(InvalidInputError, match="name"):
            holds.create_hold(session, actor=manager, name="x" * 201, reason="why")
        with pytest.raises(InvalidInputError, match="reason"):
            holds.create_hold(session, actor=manager, name="ok", reason=" ")
    with transaction(readonly=True) as session:
        assert session.execute(select(func.count()).select_from(LegalHold)).scalar_one() == 0


def test_only_records_managers_and_admins_manage_or_see_holds(people) -> None:  # noqa: ANN001
    manager, author, helpdesk = people
    admin = user("root", "admin")
    doc = make_document(author)
    with transaction() as session, pytest.raises(PermissionDeniedError):
        holds.create_hold(session, actor=author, name="mine", reason="no")
    hold_id = new_hold(manager)
    for outsider in (author, helpdesk):
        with transaction() as session:
            with pytest.raises(AccessDeniedError):
                holds.get_hold(session, actor=outsider, hold_id=hold_id)
            with pytest.raises(AccessDeniedError):
                holds.add_items(session, actor=outsider, hold_id=hold_id, document_ids=[doc])
            with pytest.raises(AccessDeniedError):
                holds.release_hold(session, actor=outsider, hold_id=hold_id, reason="mine now")
            with pytest.raises(PermissionDeniedError):
                holds.list_holds(session, actor=outsider)
    assert not held(doc)
    with transaction() as session:
        assert holds.get_hold(session, actor=manager, hold_id=hold_id).name == "Smith v. Bank"
        assert holds.add_items(session, actor=admin, hold_id=hold_id, document_ids=[doc]).added == [doc]
        with pytest.raises(RecordsNotFoundError):
            holds.get_hold(session, actor=manager, hold_id="no-such-hold")


def test_listing_pages_and_filters(people) -> None:  # noqa: ANN001
    manager, author, _ = people
    ids = [new_hold(manager, f"hold {n}") for n in range(5)]
    release(manager, ids[0])
    with transaction(readonly=True) as session:
        seen, cursor = [], None
        while True:
            page = holds.list_holds(session, actor=manager, limit=2, cursor=cursor)
            seen += [h.id for h in page.items]
            if not (cursor := page.next_cursor):
                break
        assert sorted(seen) == sorted(ids) and len(seen) == 5
        assert [h.id for h in holds.list_holds(session, actor=manager, state="released").items] == [ids[0]]
        assert len(holds.list_holds(session, actor=manager, state="active", matter_ref="M-42").items) == 4
        assert holds.list_holds(session, actor=manager, matter_ref="other").items == []
        with pytest.raises(InvalidInputError):
            holds.list_holds(session, actor=manager, state="open")


def test_items_page_by_document_id(people) -> None:  # noqa: ANN001
    manager, author, _ = people
    docs = sorted(make_document(author) for _ in range(5))
    hold_id = new_hold(manager)
    add(manager, hold_id, document_ids=docs)
    with transaction(readonly=True) as session:
        first = holds.hold_items(session, actor=manager, hold_id=hold_id, limit=3)
        rest = holds.hold_items(session, actor=manager, hold_id=hold_id, after=first.next_after, limit=3)
        assert [i.document_id for i in first.items] == docs[:3] and first.next_after == docs[2]
        assert [i.document_id for i in rest.items] == docs[3:] and rest.next_after is None
        assert holds.hold_counts(session, hold_ids=[hold_id]) == {hold_id: (5, 5)}
