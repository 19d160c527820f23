"""Search on the embedded FTS5 backend (SQLite) and PostgreSQL full text: the query language, filters, facets,
paging, access control, and the index following every kind of repository event."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from repository import service
from repository.db import get_engine, transaction
from repository.errors import InvalidInputError
from repository.models import Document
from repository.service.destruction import destroy_document
from search import service as search
from search.errors import QuerySyntaxError
from search.models import SearchEntry
from tests.records.support import make_customer, user
from tests.repository.helpers import staged
from tests.search.support import META_CASES, add, add_meta_docs, settle, start

pytestmark = pytest.mark.usefixtures("repo")


@pytest.fixture
def corpus():  # noqa: ANN201
    start()
    author = user("alice", "author", "admin")
    customer = make_customer(author, "C-1")
    ids = {
        "arrears": add(author, "Your account is in arrears. Please pay the late payment fee.", title="Arrears notice",
                       customer_id=customer, metadata={"branch": "leeds"}),
        "welcome": add(author, "Welcome to Postroom, Ada. Your loan application was approved.", title="Welcome",
                       customer_id=customer, metadata={"branch": "york"}),
        "closure": add(author, "We closed your loan account. No payment is due.", title="Closure letter"),
        "cafe": add(author, "Meeting at the Café Müller about the loans portfolio.", title="Minutes"),
    }
    settle()
    return author, customer, ids


def _ids(actor, q=None, **kwargs) -> set[str]:  # noqa: ANN001
    with transaction(readonly=True) as session:
        return {h.document_id for h in search.search(session, actor=actor, q=q, **kwargs).hits}


def test_the_query_language(corpus) -> None:  # noqa: ANN001
    author, _, ids = corpus
    assert _ids(author, "arrears") == {ids["arrears"]}
    assert _ids(author, '"late payment"') == {ids["arrears"]}
    assert _ids(author, '"payment late"') == set()
    assert _ids(author, "loan*") == {ids["welcome"], ids["closure"], ids["cafe"]}
    assert _ids(author, "loan* -closed") == {ids["welcome"], ids["cafe"]}
    assert _ids(author, "loan* AND NOT closed") == {ids["welcome"], ids["cafe"]}
    assert _ids(author, "arrears OR approved") == {ids["arrears"], ids["welcome"]}
    assert _ids(author, "(arrears OR approved) payment") == {ids["arrears"]}
    assert _ids(author, "cafe muller") == {ids["cafe"]}  # accents and case folded
    assert _ids(author, "CLOSURE") == {ids["closure"]}  # titles are searched too


def test_hits_have_safe_snippets_and_are_ranked(corpus) -> None:  # noqa: ANN001
    author, _, ids = corpus
    add(author, "<script>alert(1)</script> payment payment payment reminder", title="Reminder")
    settle()
    with transaction(readonly=True) as session:
        page = search.search(session, actor=author, q="payment")
    assert page.total == 3
    top = page.hits[0]
    assert top.title == "Reminder" and "<mark>payment</mark>" in top.snippet
    assert "<script>" not in top.snippet  # text is escaped (FTS5) or its tags dropped (PostgreSQL headline)


@pytest.mark.parametrize(("q", "where"), [('"unclosed', 0), ("a AND", 5), ("(a b", 0), ("NOT a", 0), ("x*y", 1)])
def test_a_malformed_query_says_where(corpus, q, where) -> None:  # noqa: ANN001
    author, _, _ = corpus
    with pytest.raises(QuerySyntaxError) as err, transaction(readonly=True) as session:
        search.search(session, actor=author, q=q)
    assert err.value.extra["position"] == where and f"position {where}" in err.value.detail


def test_filters_facets_and_paging(corpus) -> None:  # noqa: ANN001
    author, customer, ids = corpus
    assert _ids(author, customer_id=customer) == {ids["arrears"], ids["welcome"]}
    assert _ids(author, "your", meta={"branch": "york"}) == {ids["welcome"]}
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert _ids(author, "loan*", created_from=future) == set()
    assert _ids(author, "loan*", created_to=future) == {ids["welcome"], ids["closure"], ids["cafe"]}
    with transaction(readonly=True) as session:
        page = search.search(session, actor=author, q="loan* OR arrears", limit=2, sort="newest")
        assert page.total == 4 and len(page.hits) == 2 and page.next_cursor
        year = str(dt.datetime.now(dt.UTC).year)
        assert page.facets["document_type"] == {"general": 4} and page.facets["year"] == {year: 4}
        assert page.facets["customer"] == {customer: 2}
        rest = search.search(session, actor=author, q="loan* OR arrears", limit=2, sort="newest",
                             cursor=page.next_cursor)
    assert rest.next_cursor is None
    assert {h.document_id for h in page.hits + rest.hits} == set(ids.values())


def test_results_only_hold_what_the_caller_may_read(corpus) -> None:  # noqa: ANN001
    author, _, _ = corpus
    with transaction() as session:
        service.create_type(session, actor=author, name="hr-file", allowed_media_types=[],
                            read_roles=["records_manager"], write_roles=["records_manager"])
    secret = add(author, "salary review for the loans team", document_type="hr-file")
    settle()
    helpdesk = user("hugo", "helpdesk")
    manager = user("rita", "records_manager")
    assert secret not in _ids(helpdesk, "salary")
    assert _ids(manager, "salary") == {secret}
    with transaction(readonly=True) as session:
        assert search.search(session, actor=helpdesk, q="salary").total == 0


def test_a_type_created_after_the_callers_types_were_read_is_not_shown(corpus, monkeypatch) -> None:  # noqa: ANN001
    author, _, _ = corpus
    with transaction() as session:
        hr = service.create_type(session, actor=author, name="hr-file", allowed_media_types=[],
                                 read_roles=["records_manager"], write_roles=["records_manager"]).id
    secret = add(author, "salary review for the loans team", document_type="hr-file")
    settle()
    read_types = search._readable_types

    def before_hr_existed(session, actor, document_type):  # noqa: ANN001, ANN202
        ids, names = read_types(session, actor, document_type)
        return [i for i in ids if i != hr], {k: v for k, v in names.items() if k != hr}

    monkeypatch.setattr(search, "_readable_types", before_hr_existed)  # the index knows a type the caller's list
    with transaction(readonly=True) as session:                         # does not: its documents stay hidden
        page = search.search(session, actor=user("hugo", "helpdesk"), q="salary OR loan*")
    assert secret not in {h.document_id for h in page.hits} and page.hits
    assert "hr-file" not in page.facets["document_type"] and hr not in page.facets["document_type"]


def test_the_index_follows_every_kind_of_event(corpus) -> None:  # noqa: ANN001
    author, _, ids = corpus
    doc = ids["closure"]
    with transaction() as session:  # check-in of new content
        service.checkout(session, actor=author, document_id=doc)
    with transaction() as session:
        service.checkin(session, document_id=doc, actor=author, content=staged(b"Account reopened after appeal"))
    settle()
    assert _ids(author, "reopened") == {doc} and _ids(author, "closed") == set()
    with transaction() as session:  # metadata and title change
        service.update_document(session, actor=author, document_id=doc, expected_revision=None,
                                title="Appeal outcome", metadata={"branch": "hull"})
    settle()
    assert _ids(author, "appeal", meta={"branch": "hull"}) == {doc}
    with transaction() as session:  # trash and restore
        service.trash_document(session, actor=author, document_id=doc)
    settle()
    assert _ids(author, "reopened") == set()
    with transaction() as session:
        service.restore_document(session, actor=author, document_id=doc)
    settle()
    assert _ids(author, "reopened") == {doc}
    with transaction() as session:  # destroyed by records management
        destroy_document(session, document_id=doc, actor="rita", reason="destroy")
    settle()
    assert _ids(author, "reopened") == set()
    with transaction(readonly=True) as session:
        assert session.query(SearchEntry).filter_by(document_id=doc).count() == 0
        assert search.verify(session).ok


def test_restricted_documents_are_for_records_managers_only(corpus) -> None:  # noqa: ANN001
    author, _, ids = corpus
    with transaction() as session:
        session.execute(update(Document).where(Document.id == ids["welcome"]).values(restricted=True))
        from search.indexing import enqueue

        enqueue(session, [ids["welcome"]])
    settle()
    assert _ids(user("hugo", "helpdesk"), "approved") == set()
    assert _ids(user("rita", "records_manager"), "approved") == {ids["welcome"]}


def test_verify_finds_drift_and_reindex_repairs_it(corpus) -> None:  # noqa: ANN001
    author, _, ids = corpus
    with transaction() as session:  # the index loses a row and another goes stale behind its back
        session.query(SearchEntry).filter_by(document_id=ids["cafe"]).delete()
        session.execute(update(Document).where(Document.id == ids["welcome"]).values(title="Changed quietly"))
    with transaction(readonly=True) as session:
        report = search.verify(session)
    assert report.missing == [ids["cafe"]] and report.stale == [ids["welcome"]] and not report.ok
    search.reindex(get_engine())
    with transaction(readonly=True) as session:
        assert search.verify(session).ok
    assert _ids(author, "muller") == {ids["cafe"]} and _ids(author, "quietly") == {ids["welcome"]}


def test_reindex_removes_what_verify_reports_as_extra_after_trash_and_destruction(corpus) -> None:  # noqa: ANN001
    author, _, ids = corpus
    with transaction() as session:  # the outbox events are not delivered: the index still holds both
        service.trash_document(session, actor=author, document_id=ids["cafe"])
        destroy_document(session, document_id=ids["closure"], actor="rita", reason="retention ended")
    with transaction(readonly=True) as session:
        report = search.verify(session)
    assert sorted(report.extra) == sorted([ids["cafe"], ids["closure"]]) and not report.ok
    search.reindex(get_engine())
    with transaction(readonly=True) as session:
        assert search.verify(session).ok
        left = set(session.execute(select(SearchEntry.document_id)).scalars())
    assert left == {ids["arrears"], ids["welcome"]}
    assert _ids(author, "muller") == set() and _ids(author, "arrears") == {ids["arrears"]}


@pytest.mark.parametrize("q", ["report", None])
def test_metadata_filters_compare_top_level_scalars_booleans_as_true_and_false(corpus, q) -> None:  # noqa: ANN001
    author, _, _ = corpus
    ids = add_meta_docs(author)
    settle()
    names = {v: k for k, v in ids.items()}
    for meta, expected in META_CASES:
        assert {names[i] for i in _ids(author, q, meta=meta) if i in names} == expected, meta


def test_a_metadata_filter_value_longer_than_elasticsearch_indexes_is_refused(corpus) -> None:  # noqa: ANN001
    author, _, _ = corpus
    with pytest.raises(InvalidInputError, match="meta.branch must be at most 500"), \
            transaction(readonly=True) as session:
        search.search(session, actor=author, meta={"branch": "x" * 501})


def test_text_that_cannot_be_extracted_is_still_found_by_title(corpus) -> None:  # noqa: ANN001
    author, _, _ = corpus
    broken = add(author, "%PDF-1.7 not really a pdf", title="Scanned contract", filename="scan.pdf")
    settle()
    assert _ids(author, "scanned") == {broken}
    with transaction(readonly=True) as session:
        [hit] = search.search(session, actor=author, q="scanned").hits
        report = search.verify(session)
    # The hit says it was found by its title alone, and why; verify lists it without calling the index faulty.
    assert (hit.text_status, bool(hit.text_error)) == ("failed", True)
    assert report.ok and report.without_text == {"failed": 1} and report.without_text_ids == [broken]
    with transaction(readonly=True) as session:
        [readable] = search.search(session, actor=author, q="arrears").hits
    assert (readable.text_status, readable.text_error) == ("ok", None)


def test_indexing_empties_the_queue_and_keeps_text_across_metadata_changes(corpus) -> None:  # noqa: ANN001
    author, _, ids = corpus
    from search import indexing

    with transaction(readonly=True) as session:
        assert indexing.queued(session) == 0
        before = session.query(SearchEntry).filter_by(document_id=ids["arrears"]).one().indexed_at
    with transaction() as session:
        service.update_document(session, actor=author, document_id=ids["arrears"], expected_revision=None,
                                metadata={"branch": "hull"})
    settle()
    with transaction(readonly=True) as session:
        entry = session.query(SearchEntry).filter_by(document_id=ids["arrears"]).one()
        assert indexing.queued(session) == 0
    assert entry.indexed_at > before and entry.meta == {"branch": "hull"} and "arrears" in entry.body
