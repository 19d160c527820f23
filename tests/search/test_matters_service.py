"""E-discovery matters on SQLite and PostgreSQL: opening, changing and closing a matter, saved searches run through
search, holds placed from a search deciding from the database (not the index), the chain of custody and its
tamper detection, who may do what, and bad input refused without writes."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, func, select, update

from records.models import HoldItem, LegalHold
from repository import service
from repository.access import AccessDeniedError
from repository.db import transaction
from repository.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from repository.models import AuditEntry
from repository.service.destruction import destroy_document
from search.errors import QuerySyntaxError
from search.matters import preserve
from search.matters import service as matters
from search.matters.custody import verify_custody
from search.matters.errors import MatterStateError
from search.matters.models import Matter, MatterEvent, MatterSearch
from search.models import SearchEntry
from tests.records.support import make_customer, user
from tests.repository.helpers import staged
from tests.search.support import META_CASES, add, add_meta_docs, settle, start

pytestmark = pytest.mark.usefixtures("repo")


@pytest.fixture
def people():  # noqa: ANN201
    start()
    return {"author": user("alice", "author"), "manager": user("rita", "records_manager"),
            "auditor": user("audrey", "auditor"), "helpdesk": user("hal", "helpdesk")}


def _open(manager, **kwargs) -> str:  # noqa: ANN001, ANN003
    with transaction() as session:
        return matters.create_matter(session, actor=manager, name=kwargs.pop("name", "Smith v. Bank"),
                                     **kwargs).id


def _save(manager, matter_id: str, name: str = "fraud", **criteria) -> str:  # noqa: ANN001, ANN003
    with transaction() as session:
        return matters.add_search(session, actor=manager, matter_id=matter_id, name=name, **criteria).id


def _place(manager, matter_id: str, search_id: str) -> preserve.PlacedHold:  # noqa: ANN001
    with transaction() as session:
        return preserve.place_hold(session, actor=manager, matter_id=matter_id, search_id=search_id)


def _events(matter_id: str) -> list[MatterEvent]:
    with transaction(readonly=True) as session:
        return list(session.execute(select(MatterEvent).where(MatterEvent.matter_id == matter_id)
                                    .order_by(MatterEvent.seq)).scalars())


def _verify(matter_id: str):  # noqa: ANN202
    with transaction(readonly=True) as session:
        return verify_custody(session, session.get(Matter, matter_id))


def test_open_update_and_close_a_matter_every_action_audited_and_chained(people) -> None:  # noqa: ANN001
    manager, author = people["manager"], people["author"]
    customer = make_customer(author, "C-1")
    matter_id = _open(manager, description="Mis-selling complaint", custodians=["alice"], customers=[customer],
                      date_from=dt.date(2024, 1, 1), date_to=dt.date(2024, 12, 31), bates_prefix="SMITH")
    with transaction() as session:
        matters.update_matter(session, actor=manager, matter_id=matter_id, description="Mis-selling claim")
    with transaction() as session:
        matters.update_matter(session, actor=manager, matter_id=matter_id, status="closed")
    with transaction(readonly=True) as session:
        matter = matters.get_matter(session, actor=manager, matter_id=matter_id)
        assert (matter.status, matter.closed_by, matter.description) == ("closed", "rita", "Mis-selling claim")
        assert matter.custodians == ["alice"] and matter.customers == [customer] and matter.bates_prefix == "SMITH"
        audited = list(session.execute(select(AuditEntry.action).where(
            AuditEntry.object_type == "matter", AuditEntry.object_id == matter_id).order_by(AuditEntry.seq)).scalars())
    assert audited == ["matter.created", "matter.updated", "matter.closed"]
    events = _events(matter_id)
    assert [(e.seq, e.actor, e.action) for e in events] == [(1, "rita", "created"), (2, "rita", "updated"),
                                                            (3, "rita", "closed")]
    assert events[1].details == {"description": "Mis-selling claim",
                                 "previous": {"description": "Mis-selling complaint"}}
    assert events[1].prev_hash == events[0].hash
    assert _verify(matter_id).ok and _verify(matter_id).checked == 3

    # A closed matter refuses every change, with nothing written.
    changes = [
        lambda s: matters.update_matter(s, actor=manager, matter_id=matter_id, description="again"),
        lambda s: matters.update_matter(s, actor=manager, matter_id=matter_id, status="open"),
        lambda s: matters.add_search(s, actor=manager, matter_id=matter_id, name="late", q="fraud"),
    ]
    for change in changes:
        with pytest.raises(MatterStateError, match="closed"), transaction() as session:
            change(session)
    assert len(_events(matter_id)) == 3


def test_the_bates_prefix_defaults_from_the_name_and_is_checked(people) -> None:  # noqa: ANN001
    manager = people["manager"]
    with transaction(readonly=True) as session:
        assert session.get(Matter, _open(manager, name="Smith v. Bank (2024)")).bates_prefix == "SMITHVBA"
    for bad in ("abc", "AB-1", "A" * 13, ""):
        with pytest.raises(InvalidInputError, match="bates_prefix"), transaction() as session:
            matters.create_matter(session, actor=manager, name="X", bates_prefix=bad)


def test_bad_matters_are_refused_and_nothing_is_written(people) -> None:  # noqa: ANN001
    cases = [({"name": " "}, "name"), ({"custodians": ["nobody"]}, "custodians"),
             ({"customers": ["no-such-customer"]}, "customers"),
             ({"date_from": dt.date(2024, 2, 1), "date_to": dt.date(2024, 1, 1)}, "date_to"),
             ({"custodians": "alice"}, "custodians")]
    for kwargs, field in cases:
        with pytest.raises(InvalidInputError) as err, transaction() as session:
            matters.create_matter(session, actor=people["manager"], **{"name": "M", **kwargs})
        assert err.value.extra["field"] == field
    with transaction(readonly=True) as session:
        assert session.execute(select(func.count()).select_from(Matter)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.object_type == "matter")).scalar_one() == 0


def test_bad_saved_searches_are_refused(people) -> None:  # noqa: ANN001
    manager = people["manager"]
    matter_id = _open(manager)
    _save(manager, matter_id, "fraud", q="fraud")
    with pytest.raises(QuerySyntaxError) as err, transaction() as session:
        matters.add_search(session, actor=manager, matter_id=matter_id, name="bad", q='"unclosed')
    assert err.value.extra["position"] == 0
    naive = dt.datetime(2024, 1, 1)
    cases = [({"name": "fraud", "q": "x"}, "name"), ({"name": "t", "document_type": "nope"}, "document_type"),
             ({"name": "c", "customer_id": "nope"}, "customer_id"), ({"name": "n", "created_from": naive},
                                                                      "created_from"),
             ({"name": "m", "meta": {"branch": 5}}, "meta.branch")]
    for kwargs, field in cases:
        with pytest.raises(InvalidInputError) as err, transaction() as session:
            matters.add_search(session, actor=manager, matter_id=matter_id, **kwargs)
        assert err.value.extra["field"] == field
    assert [e.action for e in _events(matter_id)] == ["created", "search.added"]


def test_who_may_see_and_manage_matters(people) -> None:  # noqa: ANN001
    manager, auditor, helpdesk = people["manager"], people["auditor"], people["helpdesk"]
    matter_id = _open(manager)
    admin = user("root", "admin")
    with transaction(readonly=True) as session:  # managers, admins and auditors see it
        for reader in (manager, admin, auditor):
            assert matters.get_matter(session, actor=reader, matter_id=matter_id).name == "Smith v. Bank"
            assert [m.id for m in matters.list_matters(session, actor=reader).items] == [matter_id]
    for attempt in (lambda s: matters.get_matter(s, actor=helpdesk, matter_id=matter_id),
                    lambda s: matters.list_matters(s, actor=helpdesk),
                    lambda s: matters.create_matter(s, actor=helpdesk, name="Mine"),
                    lambda s: matters.update_matter(s, actor=helpdesk, matter_id=matter_id, description="x")):
        with pytest.raises(AccessDeniedError), transaction() as session:  # anyone else: it does not exist
            attempt(session)
    for attempt in (lambda s: matters.create_matter(s, actor=auditor, name="Mine"),  # auditors only read
                    lambda s: matters.update_matter(s, actor=auditor, matter_id=matter_id, description="x"),
                    lambda s: matters.add_search(s, actor=auditor, matter_id=matter_id, name="s", q="x")):
        with pytest.raises(PermissionDeniedError), transaction() as session:
            attempt(session)
    with transaction() as session:
        matters.update_matter(session, actor=admin, matter_id=matter_id, description="by the admin")


def test_running_a_saved_search_is_audited_and_only_shows_readable_documents(people) -> None:  # noqa: ANN001
    author, manager = people["author"], people["manager"]
    found = add(author, "The fraud was reported in March.", title="Report")
    add(author, "Nothing to see.", title="Other")
    settle()
    matter_id = _open(manager)
    search_id = _save(manager, matter_id, q="fraud")
    with transaction() as session:
        page = matters.run_search(session, actor=manager, matter_id=matter_id, search_id=search_id)
    assert [h.document_id for h in page.hits] == [found] and page.total == 1
    ran = _events(matter_id)[-1]
    assert ran.action == "search.run" and ran.details["total"] == 1 and ran.details["document_ids"] == [found]


@pytest.fixture
def held_corpus(people):  # noqa: ANN001, ANN201
    """Documents mentioning fraud, some of which the index no longer describes correctly."""
    author = people["author"]
    ids = {
        "kept": add(author, "Fraud alert for the Leeds branch.", metadata={"branch": "leeds"}),
        "moved": add(author, "Fraud case moved away from Leeds.", metadata={"branch": "leeds"}),
        "destroyed": add(author, "Fraud case closed and destroyed.", metadata={"branch": "leeds"}),
        "other": add(author, "A quiet day at the Leeds branch.", metadata={"branch": "leeds"}),
        "arrived": add(author, "Fraud noted at York, to move to Leeds.", metadata={"branch": "york"}),
        "rewritten": add(author, "Fraud suspected in Leeds.", metadata={"branch": "leeds"}),
    }
    with transaction() as session:  # a second version of "kept"
        service.checkout(session, actor=author, document_id=ids["kept"])
    with transaction() as session:
        service.checkin(session, document_id=ids["kept"], actor=author, content=staged(b"Fraud alert, Leeds, v2"))
    settle()
    # Changes the index has not caught up with yet (no settle): the database decides.
    with transaction() as session:
        service.update_document(session, actor=author, document_id=ids["moved"], expected_revision=None,
                                metadata={"branch": "hull"})
        service.update_document(session, actor=author, document_id=ids["arrived"], expected_revision=None,
                                metadata={"branch": "leeds"})
        destroy_document(session, document_id=ids["destroyed"], actor="rita", reason="retention ended")
    with transaction() as session:
        service.checkout(session, actor=author, document_id=ids["rewritten"])
    with transaction() as session:
        service.checkin(session, document_id=ids["rewritten"], actor=author,
                        content=staged(b"All clear in Leeds after review."))
    ids["new"] = add(author, "Fresh fraud report from Leeds.", metadata={"branch": "leeds"})  # not indexed yet
    return ids


def test_a_hold_from_a_search_covers_exactly_what_the_database_matches(people, held_corpus) -> None:  # noqa: ANN001
    manager, ids = people["manager"], held_corpus
    matter_id = _open(manager)
    search_id = _save(manager, matter_id, "leeds fraud", q="fraud", meta={"branch": "leeds"})
    placed = _place(manager, matter_id, search_id)

    expected = {ids["kept"], ids["arrived"], ids["new"]}
    assert set(placed.covered) == expected
    assert placed.covered[ids["kept"]] == ["1.0", "1.1"] and placed.covered[ids["new"]] == ["1.0"]
    assert placed.selection.not_confirmed == 2  # "moved" (metadata) and "destroyed"
    with transaction(readonly=True) as session:
        hold = session.get(LegalHold, placed.placed.hold_id)
        assert hold.matter_ref == matter_id and hold.state == "active"
        items = dict(session.execute(select(HoldItem.document_id, HoldItem.versions)
                                     .where(HoldItem.hold_id == hold.id)).all())
    assert items == placed.covered
    event = _events(matter_id)[-1]
    assert event.action == "hold.placed" and event.actor == "rita"
    assert {d["document_id"]: d["versions"] for d in event.details["documents"]} == placed.covered
    assert event.details["hold_id"] == hold.id and event.details["search"]["meta"] == {"branch": "leeds"}

    # The same search once the index has caught up gives the same documents.
    settle()
    again = _place(manager, matter_id, search_id)
    assert set(again.covered) == expected and again.selection.judged_here == 0
    assert _verify(matter_id).ok


def test_a_search_without_text_decides_from_the_database_alone_trash_included(people) -> None:  # noqa: ANN001
    author, manager = people["author"], people["manager"]
    customer = make_customer(author, "C-9")
    mine = add(author, "one", customer_id=customer)
    trashed = add(author, "two", customer_id=customer)
    add(author, "three")
    with transaction() as session:
        service.trash_document(session, actor=author, document_id=trashed)
    matter_id = _open(manager)  # nothing indexed at all: no settle
    placed = _place(manager, matter_id, _save(manager, matter_id, "customer", customer_id=customer))
    assert set(placed.covered) == {mine, trashed} and placed.selection.index_candidates == 0


def _trash(author, *document_ids: str) -> None:  # noqa: ANN001
    with transaction() as session:
        for document_id in document_ids:
            service.trash_document(session, actor=author, document_id=document_id)


def test_a_hold_from_a_search_with_text_covers_matching_documents_in_the_trash(people) -> None:  # noqa: ANN001
    author, manager = people["author"], people["manager"]
    active = add(author, "Fraud reported at the Leeds branch.")
    binned = add(author, "Fraud evidence, later put in the trash.")
    add(author, "Nothing relevant, also in the trash.", title="Other")
    settle()
    unrelated = add(author, "Nothing relevant, also in the trash.", title="Other")
    never_indexed = add(author, "Fraud memo trashed before it was ever indexed.")
    _trash(author, binned, unrelated, never_indexed)
    settle()  # the index drops (or never takes) trashed documents
    with transaction(readonly=True) as session:
        indexed = set(session.execute(select(SearchEntry.document_id)).scalars())
    assert active in indexed and not indexed & {binned, unrelated, never_indexed}
    matter_id = _open(manager)
    placed = _place(manager, matter_id, _save(manager, matter_id, "fraud", q="fraud"))

    assert set(placed.covered) == {active, binned, never_indexed}
    assert placed.selection.in_trash == {binned, never_indexed}
    with transaction(readonly=True) as session:
        held = set(session.execute(select(HoldItem.document_id)
                                   .where(HoldItem.hold_id == placed.placed.hold_id)).scalars())
    assert held == {active, binned, never_indexed}
    event = _events(matter_id)[-1]
    assert {d["document_id"]: d["in_trash"] for d in event.details["documents"]} == {
        active: False, binned: True, never_indexed: True}
    assert event.details["in_trash_count"] == 2 and _verify(matter_id).ok


def test_too_many_trashed_texts_to_read_refuse_the_hold_without_writes(people, monkeypatch) -> None:  # noqa: ANN001
    author, manager = people["author"], people["manager"]
    add(author, "Fraud in the open.")
    _trash(author, add(author, "Fraud one."), add(author, "Fraud two."))
    settle()
    monkeypatch.setattr(preserve, "MAX_UNSETTLED", 1)
    matter_id = _open(manager)
    search_id = _save(manager, matter_id, q="fraud")
    with pytest.raises(InvalidInputError, match="2 documents in the trash.*narrower"), transaction() as session:
        preserve.place_hold(session, actor=manager, matter_id=matter_id, search_id=search_id)
    with transaction(readonly=True) as session:
        assert session.execute(select(func.count()).select_from(LegalHold)).scalar_one() == 0


@pytest.mark.parametrize("q", ["report", None])
def test_holds_compare_metadata_as_search_does(people, q) -> None:  # noqa: ANN001
    author, manager = people["author"], people["manager"]
    names = {v: k for k, v in add_meta_docs(author).items()}
    settle()
    matter_id = _open(manager)
    for n, (meta, expected) in enumerate(META_CASES):
        search_id = _save(manager, matter_id, f"meta {n}", q=q, meta=meta)
        with transaction(readonly=True) as session:
            selected = preserve.select_documents(session, session.get(MatterSearch, search_id))
        assert {names[i] for i in selected.document_ids} == expected, meta


def test_a_search_matching_nothing_places_no_hold(people) -> None:  # noqa: ANN001
    author, manager = people["author"], people["manager"]
    add(author, "Nothing relevant.")
    settle()
    matter_id = _open(manager)
    search_id = _save(manager, matter_id, q="fraud")
    with pytest.raises(InvalidInputError, match="matches no documents"), transaction() as session:
        preserve.place_hold(session, actor=manager, matter_id=matter_id, search_id=search_id)
    with transaction(readonly=True) as session:
        assert session.execute(select(func.count()).select_from(LegalHold)).scalar_one() == 0
    assert [e.action for e in _events(matter_id)] == ["created", "search.added"]


def test_holds_need_a_manager_and_an_open_matter(people) -> None:  # noqa: ANN001
    author, manager, auditor = people["author"], people["manager"], people["auditor"]
    add(author, "Fraud.")
    settle()
    matter_id = _open(manager)
    search_id = _save(manager, matter_id, q="fraud")
    with pytest.raises(PermissionDeniedError), transaction() as session:
        preserve.place_hold(session, actor=auditor, matter_id=matter_id, search_id=search_id)
    with pytest.raises(AccessDeniedError), transaction() as session:
        preserve.place_hold(session, actor=people["helpdesk"], matter_id=matter_id, search_id=search_id)
    other = _open(manager, name="Other matter")
    with pytest.raises(NotFoundError, match="not found"), transaction() as session:  # another matter's search
        preserve.place_hold(session, actor=manager, matter_id=other, search_id=search_id)
    with transaction() as session:
        matters.update_matter(session, actor=manager, matter_id=matter_id, status="closed")
    with pytest.raises(MatterStateError), transaction() as session:
        preserve.place_hold(session, actor=manager, matter_id=matter_id, search_id=search_id)
    with transaction(readonly=True) as session:
        assert session.execute(select(func.count()).select_from(LegalHold)).scalar_one() == 0


def test_the_chain_of_custody_detects_tampering(people) -> None:  # noqa: ANN001
    manager = people["manager"]
    matter_id = _open(manager)
    _save(manager, matter_id, "a", q="alpha")
    _save(manager, matter_id, "b", q="beta")
    assert _verify(matter_id).ok and _verify(matter_id).checked == 3
    with transaction() as session:  # someone rewrites what the second event says
        session.execute(update(MatterEvent).where(MatterEvent.matter_id == matter_id, MatterEvent.seq == 2)
                        .values(details={"search_id": "x", "name": "a", "q": "innocent"}))
    report = _verify(matter_id)
    assert not report.ok and report.bad_seq == 2 and "event 2" in report.reason and "altered" in report.reason


def test_the_chain_of_custody_detects_removed_events(people) -> None:  # noqa: ANN001
    manager = people["manager"]
    matter_id = _open(manager)
    _save(manager, matter_id, "a", q="alpha")
    _save(manager, matter_id, "b", q="beta")
    with transaction() as session:  # the last event quietly removed
        session.execute(delete(MatterEvent).where(MatterEvent.matter_id == matter_id, MatterEvent.seq == 3))
    report = _verify(matter_id)
    assert not report.ok and report.bad_seq == 3 and "missing" in report.reason
    with transaction() as session:  # or one in the middle
        session.execute(delete(MatterEvent).where(MatterEvent.matter_id == matter_id, MatterEvent.seq == 2))
    report = _verify(matter_id)
    assert not report.ok and report.bad_seq == 2
