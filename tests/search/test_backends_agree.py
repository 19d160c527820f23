"""Elasticsearch and SQLite FTS5 fed by the same repository through the outbox: the same queries give the same
hits, totals and facets; Elasticsearch being down never fails a write and the index catches up; a reindex swaps
in a new Elasticsearch index."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from repository import runtime, service
from repository.db import get_engine, transaction
from repository.migrate import upgrade
from repository.models import Document
from repository.service.destruction import destroy_document
from repository.types import utcnow
from search import indexing
from search import service as search
from search._elastic import ElasticBackend
from search._fts5 import Fts5Backend
from search.backend import SearchQuery, get_backend, reset_backends
from search.models import SearchEntry, SearchQueueItem
from search.query import parse
from tests.conftest import configure
from tests.records.support import make_customer, user
from tests.search.elastic_support import dead_url, drop_indices, es_url, new_alias
from tests.search.support import META_CASES, add, add_meta_docs, settle, start

pytestmark = pytest.mark.elasticsearch


def _use_elasticsearch(monkeypatch, url: str) -> ElasticBackend:  # noqa: ANN001
    monkeypatch.setenv("POSTROOM_ELASTICSEARCH_URL", url)
    runtime.reset()
    reset_backends()
    backend = get_backend()
    assert isinstance(backend, ElasticBackend)
    return backend


@pytest.fixture
def elastic(monkeypatch, tmp_path) -> Iterator[str]:  # noqa: ANN001
    """A SQLite repository (so FTS5 indexes search_entries too) whose configured backend is Elasticsearch."""
    url, alias = es_url(), new_alias()
    configure(monkeypatch, tmp_path)
    monkeypatch.setenv("POSTROOM_SEARCH_BACKEND", "elasticsearch")
    monkeypatch.setenv("POSTROOM_ELASTICSEARCH_INDEX", alias)
    _use_elasticsearch(monkeypatch, url)
    upgrade(get_engine())
    start()
    yield url
    reset_backends()
    get_engine().dispose()
    runtime.reset()
    drop_indices(alias)


def _backdate(document_id: str, when: str, **values) -> None:  # noqa: ANN003
    with transaction() as session:
        session.execute(update(Document).where(Document.id == document_id).values(
            created_at=dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC), **values))


@pytest.fixture
def corpus(elastic):  # noqa: ANN001, ANN201
    author = user("alice", "author", "admin")
    with transaction() as session:
        service.create_type(session, actor=author, name="hr-file", allowed_media_types=[],
                            read_roles=["records_manager"], write_roles=["records_manager"])
    ada, bob = make_customer(author, "C-1"), make_customer(author, "C-2")
    texts = [
        ("Arrears notice", "Your account is in arrears. Please pay the late payment fee.", "general", ada,
         {"branch": "leeds"}, "2024-05-01T09:00:00"),
        ("Welcome", "Welcome to Postroom, Ada. Your loan application was approved.", "general", ada,
         {"branch": "york"}, "2025-01-10T09:00:00"),
        ("Closure letter", "We closed your loan account. No payment is due.", "general", bob, None,
         "2025-06-30T00:00:00"),
        ("Minutes", "Meeting at the Café Müller about the loans portfolio with O'Brien.", "general", None,
         {"branch": "leeds"}, "2025-02-02T12:00:00"),
        ("E-mail policy", "Send e-mails to the help-desk; phone 0800 123 456. Crème brûlée, naïve façade.",
         "general", None, None, "2023-12-31T23:30:00"),
        ("Reminder", "<b>Payment</b> payment payment reminder for the Straße account", "general", bob, None,
         "2025-03-01T08:00:00"),
        ("東京都 office", "Our branch office in 東京都 opened; loan desk upstairs.", "general", None, None,
         "2025-04-04T04:00:00"),
        ("Salary review", "salary review for the loans team", "hr-file", None, None, "2025-03-03T03:00:00"),
        ("Erased letter", "loan payment history of an erased customer", "general", bob, None,
         "2025-05-05T05:00:00"),
    ]
    ids = []
    for title, body, kind, customer, meta, when in texts:
        document_id = add(author, body, title=title, document_type=kind, customer_id=customer, metadata=meta)
        _backdate(document_id, when, restricted=title == "Erased letter")
        ids.append(document_id)
    settle()
    get_backend().refresh()
    return author, ada, ids


QUERIES = ["arrears", '"late payment"', '"payment late"', "payment", "loan*", "lo*", "welc*", "loan* -closed",
           "loan* AND NOT closed", "loan* -(closed OR approved)", "arrears OR approved",
           "(arrears OR approved) payment",
           "cafe muller", "CAFÉ", "o'brien", "brien", "e-mail", "email", "help desk", '"0800 123"', "東京都",
           "closure", "salary", "creme brulee", "naive facade", "strasse", "straße", "payment reminder",
           '"loan desk"', "erased", None]


def _both(query: SearchQuery):  # noqa: ANN202
    with transaction(readonly=True) as session:
        return Fts5Backend().search(session, query), get_backend().search(session, query)


@pytest.mark.parametrize("include_restricted", [False, True])
def test_the_same_queries_give_the_same_hits_totals_and_facets(corpus, include_restricted) -> None:  # noqa: ANN001
    with transaction(readonly=True) as session:
        type_ids = [t.id for t in service.list_types(session)]
    answered = 0
    for q in QUERIES:
        query = SearchQuery(expr=parse(q), type_ids=type_ids, include_restricted=include_restricted, limit=100)
        fts5, elastic = _both(query)
        assert {h.document_id for h in elastic.hits} == {h.document_id for h in fts5.hits}, q
        assert (elastic.total, elastic.facets) == (fts5.total, fts5.facets), q
        answered += bool(fts5.hits)
    assert answered >= 22  # most queries find something: the agreement is not on empty answers


def test_filters_sorting_and_paging_agree(corpus) -> None:  # noqa: ANN001
    _, ada, _ = corpus
    with transaction(readonly=True) as session:
        general = [t.id for t in service.list_types(session) if t.name == "general"]
    june_30 = dt.datetime(2025, 6, 30, tzinfo=dt.UTC)
    variants = [dict(customer_id=ada), dict(meta={"branch": "leeds"}), dict(created_to=june_30),
                dict(created_from=june_30), dict(created_from=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
                                                 created_to=dt.datetime(2025, 3, 1, tzinfo=dt.UTC))]
    for q in ("loan*", "payment OR welcome", None):
        for filters in variants:
            fts5, elastic = _both(SearchQuery(expr=parse(q), type_ids=general, limit=100, **filters))
            assert {h.document_id for h in elastic.hits} == {h.document_id for h in fts5.hits}, (q, filters)
            assert elastic.facets == fts5.facets, (q, filters)
        for sort in ("newest", "oldest"):  # a total order (created_at, then document id): pages agree exactly
            for offset in (0, 2, 4):
                fts5, elastic = _both(SearchQuery(expr=parse(q), type_ids=general, sort=sort, offset=offset,
                                                  limit=2))
                assert [h.document_id for h in elastic.hits] == [h.document_id for h in fts5.hits], (q, sort)


def test_callers_see_only_what_they_may_read_in_pairs(corpus) -> None:  # noqa: ANN001
    helpdesk, manager = user("hugo", "helpdesk"), user("rita", "records_manager")
    with transaction(readonly=True) as session:
        assert search.search(session, actor=helpdesk, q="salary").total == 0
        assert [h.title for h in search.search(session, actor=manager, q="salary").hits] == ["Salary review"]
        assert search.search(session, actor=helpdesk, q="erased").total == 0  # restricted
        assert [h.title for h in search.search(session, actor=manager, q="erased").hits] == ["Erased letter"]


def test_elasticsearch_down_never_fails_a_write_and_the_index_catches_up(elastic, monkeypatch) -> None:  # noqa: ANN001
    author = user("alice", "author")
    _use_elasticsearch(monkeypatch, dead_url())
    document_id = add(author, "Written while the search cluster was away", title="Outage note")  # commits
    settle()  # the outbox delivers; indexing fails and keeps the document queued
    with transaction(readonly=True) as session:
        item = session.get(SearchQueueItem, document_id)
        assert item is not None and item.attempts == 1 and "unreachable" in item.last_error
        assert session.query(SearchEntry).filter_by(document_id=document_id).count() == 1
    live = _use_elasticsearch(monkeypatch, elastic)
    with transaction() as session:  # the retry is due (instead of waiting out the back-off)
        session.execute(update(SearchQueueItem).values(next_attempt_at=utcnow()))
    settle()
    live.refresh()
    with transaction(readonly=True) as session:
        assert indexing.queued(session) == 0
        assert [h.document_id for h in search.search(session, actor=author, q="cluster away").hits] == [document_id]
        assert search.verify(session).ok


def test_reindex_swaps_in_a_new_index(corpus) -> None:  # noqa: ANN001
    author, _, ids = corpus
    backend = get_backend()
    before = backend.live_index()
    with transaction() as session:  # the Elasticsearch index loses a document behind our back
        backend.delete(session, [ids[0]])
    backend.refresh()
    with transaction(readonly=True) as session:
        assert search.verify(session).missing == [ids[0]]
    search.reindex(get_engine())
    assert backend.live_index() != before and not backend.client.indices.exists(index=before)
    with transaction(readonly=True) as session:
        assert search.verify(session).ok
        assert {h.document_id for h in search.search(session, actor=author, q="arrears").hits} == {ids[0]}


def test_reindex_drops_trashed_and_destroyed_documents_from_elasticsearch(corpus) -> None:  # noqa: ANN001
    author, _, ids = corpus
    trashed, destroyed = ids[0], ids[2]
    backend = get_backend()
    with transaction() as session:  # the outbox events are not delivered: both stay indexed
        service.trash_document(session, actor=author, document_id=trashed)
        destroy_document(session, document_id=destroyed, actor="rita", reason="retention ended")
    with transaction(readonly=True) as session:
        assert sorted(search.verify(session).extra) == sorted([trashed, destroyed])
        assert set(backend.revisions(session, [trashed, destroyed])) == {trashed, destroyed}
    search.reindex(get_engine())
    with transaction(readonly=True) as session:
        assert search.verify(session).ok
        assert backend.revisions(session, [trashed, destroyed]) == {}
        assert backend.count(session) == len(ids) - 2


def test_metadata_filters_agree_booleans_nested_values_and_lists(corpus) -> None:  # noqa: ANN001
    author, _, _ = corpus
    ids = add_meta_docs(author)
    settle()
    get_backend().refresh()
    names = {v: k for k, v in ids.items()}
    with transaction(readonly=True) as session:
        type_ids = [t.id for t in service.list_types(session)]
    for q in ("report", None):
        for meta, expected in META_CASES:
            fts5, elastic = _both(SearchQuery(expr=parse(q), type_ids=type_ids, meta=meta, limit=100))
            assert {names.get(h.document_id) for h in fts5.hits} == expected, (q, meta)
            assert {names.get(h.document_id) for h in elastic.hits} == expected, (q, meta)
