"""The Elasticsearch backend against a real node (ops/elasticsearch.sh): mappings and word analysis, every shape
of query tree, filters, facets, sorting and paging, snippets, revisions, the zero-downtime rebuild, and
Elasticsearch being down."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch
from hypothesis import given
from hypothesis import strategies as st

from search._elastic import ElasticBackend
from search._elastic_query import MAPPINGS, source, words
from search.backend import IndexDoc, SearchQuery, TypeScope
from search.errors import SearchError, SearchUnavailableError
from search.query import parse, words_of
from tests.search.elastic_support import backend_for, dead_url, drop_indices, es_backend, es_url, new_alias

pytestmark = pytest.mark.elasticsearch
__all__ = ["es_backend"]  # the fixture, imported for pytest

TYPES = ["t-letter", "t-memo", "t-hr"]


def _doc(document_id: str, title: str, body: str, *, type_id: str = "t-letter", customer: str | None = None,
         created: str = "2025-01-01T00:00:00", meta: dict | None = None, restricted: bool = False,
         revision: int = 1) -> IndexDoc:
    return IndexDoc(document_id=document_id, revision=revision, title=title, body=body, document_type_id=type_id,
                    document_type=type_id, customer_id=customer,
                    created_at=dt.datetime.fromisoformat(created).replace(tzinfo=dt.UTC), metadata=meta or {},
                    text_status="ok", restricted=restricted)


CORPUS = [
    _doc("arrears", "Arrears notice", "Your account is in arrears. Please pay the late payment fee.",
         customer="c1", created="2024-05-01T09:00:00", meta={"branch": "leeds", "priority": 2}),
    _doc("welcome", "Welcome", "Welcome to Postroom, Ada. Your loan application was approved.",
         customer="c1", created="2025-01-10T09:00:00", meta={"branch": "york"}),
    _doc("closure", "Closure letter", "We closed your loan account. No payment is due.", customer="c2",
         created="2025-06-30T00:00:00"),
    _doc("cafe", "Minutes", "Meeting at the Café Müller about the loans portfolio with O'Brien.",
         type_id="t-memo", created="2025-02-02T12:00:00", meta={"branch": "leeds"}),
    _doc("email", "E-mail policy", "Send e-mails to the help-desk; phone 0800 123 456.", type_id="t-memo",
         created="2023-12-31T23:30:00"),
    _doc("reminder", "Reminder", "<script>alert(1)</script> payment payment payment reminder",
         created="2025-03-01T08:00:00"),
    _doc("tokyo", "東京都 office", "Our branch office in 東京都 opened.", type_id="t-memo",
         created="2025-04-04T04:00:00"),
    _doc("secret", "Salary review", "salary review for the loans team", type_id="t-hr", restricted=True,
         created="2025-03-03T03:00:00"),
]


@pytest.fixture(scope="module")
def corpus() -> Iterator[ElasticBackend]:
    """The corpus indexed once for the read-only tests of this module."""
    alias = new_alias()
    backend = backend_for(es_url(), alias)
    backend.upsert(None, CORPUS)
    backend.refresh()
    yield backend
    backend.close()
    drop_indices(alias)


def _query(q: str | None = None, **kwargs) -> SearchQuery:  # noqa: ANN003
    kwargs.setdefault("type_ids", TYPES)
    kwargs.setdefault("limit", 100)
    return SearchQuery(expr=parse(q), **kwargs)


def _ids(backend: ElasticBackend, q: str | None = None, **kwargs) -> set[str]:  # noqa: ANN003
    return {h.document_id for h in backend.search(None, _query(q, **kwargs)).hits}


@pytest.mark.parametrize(("q", "expected"), [
    ("arrears", {"arrears"}),
    ("ARREARS", {"arrears"}),
    ('"late payment"', {"arrears"}),
    ('"payment late"', set()),
    ("payment", {"arrears", "closure", "reminder"}),
    ("loan*", {"welcome", "closure", "cafe"}),
    ("welc*", {"welcome"}),  # a prefix of a title word
    ("loan* -closed", {"welcome", "cafe"}),
    ("loan* AND NOT closed", {"welcome", "cafe"}),
    ("loan* -(closed OR approved)", {"cafe"}),
    ("arrears OR approved", {"arrears", "welcome"}),
    ("(arrears OR approved) payment", {"arrears"}),
    ("arrears approved", set()),
    ("cafe muller", {"cafe"}),  # accents and case folded
    ("CAFÉ", {"cafe"}),
    ("o'brien", {"cafe"}),  # the phrase "o brien", as the text is split
    ("brien", {"cafe"}),
    ("e-mail", {"email"}),
    ("email", set()),  # "e-mail" is two words, as in FTS5
    ("help desk", {"email"}),
    ('"0800 123"', {"email"}),
    ("東京都", {"tokyo"}),
    ("closure", {"closure"}),  # titles are searched too
    ("salary", set()),  # restricted
])
def test_every_query_shape_finds_what_fts5_would(corpus, q, expected) -> None:  # noqa: ANN001
    assert _ids(corpus, q) == expected


def test_filters_are_access_control_and_narrowing(corpus) -> None:  # noqa: ANN001
    assert _ids(corpus, "loan*", type_ids=["t-memo"]) == {"cafe"}
    assert _ids(corpus, "loan*", type_ids=[]) == set()
    assert _ids(corpus, "salary", include_restricted=True) == {"secret"}
    assert _ids(corpus, "salary", include_restricted=True, type_ids=["t-letter"]) == set()
    assert _ids(corpus, customer_id="c1") == {"arrears", "welcome"}
    june_30 = dt.datetime(2025, 6, 30, tzinfo=dt.UTC)
    assert "closure" not in _ids(corpus, created_to=june_30)  # `to` is exclusive
    assert _ids(corpus, created_from=june_30) == {"closure"}  # `from` is inclusive
    assert _ids(corpus, "loan*", created_from=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
                created_to=dt.datetime(2025, 2, 1, tzinfo=dt.UTC)) == {"welcome"}
    assert _ids(corpus, meta={"branch": "leeds"}) == {"arrears", "cafe"}
    assert _ids(corpus, meta={"branch": "leeds", "priority": "2"}) == {"arrears"}
    assert _ids(corpus, meta={"branch": "hull"}) == set()


def test_the_type_scope_lists_the_fewer_types() -> None:
    every = frozenset(TYPES)
    assert TypeScope.of(_query(type_ids=TYPES, all_type_ids=every)) == TypeScope([], [])  # nothing to limit
    assert TypeScope.of(_query(type_ids=["t-letter", "t-memo"], all_type_ids=every)) == TypeScope([], ["t-hr"])
    assert TypeScope.of(_query(type_ids=["t-memo"], all_type_ids=every)) == TypeScope(["t-memo"], [])
    assert TypeScope.of(_query(type_ids=TYPES)) == TypeScope(sorted(TYPES), [])  # every type unknown: list them


@pytest.mark.parametrize("readable", [TYPES, ["t-letter", "t-memo"], ["t-hr", "t-memo"], ["t-memo"]])
@pytest.mark.parametrize("include_restricted", [False, True])
def test_excluding_the_unreadable_types_finds_what_listing_the_readable_ones_does(
        corpus, readable, include_restricted) -> None:  # noqa: ANN001
    every = frozenset(TYPES)
    for q in (None, "loan* OR salary OR minutes"):
        listed = corpus.search(None, _query(q, type_ids=readable, include_restricted=include_restricted))
        scoped = corpus.search(None, _query(q, type_ids=readable, include_restricted=include_restricted,
                                            all_type_ids=every))
        assert {h.document_id for h in scoped.hits} == {h.document_id for h in listed.hits}
        assert (scoped.total, scoped.facets) == (listed.total, listed.facets)
        assert listed.total > 0
        assert ("secret" in {h.document_id for h in scoped.hits}) == (include_restricted and "t-hr" in readable)


def test_a_request_elasticsearch_refuses_is_the_callers_error(corpus) -> None:  # noqa: ANN001
    with pytest.raises(SearchError, match="refused the search") as refused:
        corpus.search(None, _query(offset=10_000, limit=20))  # past the node's result window
    assert type(refused.value) is SearchError  # not "unavailable" (retry) nor a server fault


def test_facets_count_types_years_and_customers(corpus) -> None:  # noqa: ANN001
    result = corpus.search(None, _query())
    assert result.total == 7
    assert result.facets == {"document_type": {"t-letter": 4, "t-memo": 3},
                             "year": {"2025": 5, "2024": 1, "2023": 1},  # 2023-12-31T23:30Z is 2023 in UTC
                             "customer": {"c1": 2, "c2": 1}}
    assert list(result.facets["year"]) == ["2025", "2024", "2023"]  # newest first; types by count
    assert list(result.facets["document_type"]) == ["t-letter", "t-memo"]
    narrowed = corpus.search(None, _query("loan*"))
    assert narrowed.total == 3 and narrowed.facets["document_type"] == {"t-letter": 2, "t-memo": 1}
    alone = corpus.search(None, _query("loan*", facets=False))
    assert alone.facets == {} and alone.total == 3  # counted by the page search when there are no facets


def test_snippets_mark_matches_and_escape_the_text(corpus) -> None:  # noqa: ANN001
    hits = {h.document_id: h for h in corpus.search(None, _query("payment")).hits}
    assert "<mark>payment</mark>" in hits["arrears"].snippet
    assert "<script>" not in hits["reminder"].snippet and "&lt;script&gt;" in hits["reminder"].snippet
    assert hits["reminder"].title == "Reminder"
    [closure] = corpus.search(None, _query("closure")).hits
    assert closure.snippet == "<mark>Closure</mark> letter"  # the match is only in the title
    [phrase] = corpus.search(None, _query('"late payment"')).hits
    assert "<mark>late</mark> <mark>payment</mark>" in phrase.snippet
    newest = corpus.search(None, _query(limit=1)).hits[0]
    assert newest.document_id == "closure" and newest.snippet.startswith("We closed your loan")


def test_mappings_and_word_analysis(corpus) -> None:  # noqa: ANN001
    index = corpus.live_index()
    assert re.fullmatch(re.escape(corpus.alias) + r"-\d{20}", index)
    mapping = corpus.client.indices.get_mapping(index=index)[index]["mappings"]
    props = mapping["properties"]
    assert mapping["dynamic"] == "strict"
    assert {k: props[k]["type"] for k in ("document_id", "document_type_id", "customer_id", "text_status",
                                          "created_at", "metadata", "restricted", "revision")} == {
        "document_id": "keyword", "document_type_id": "keyword", "customer_id": "keyword",
        "text_status": "keyword", "created_at": "date", "metadata": "flattened", "restricted": "boolean",
        "revision": "long"}
    assert props["year"]["type"] == "keyword" and mapping["_meta"] == MAPPINGS["_meta"]
    assert props["title_words"]["index_phrases"] and props["body_words"]["index_phrases"]
    assert props["title"]["type"] == "text" and props["title"]["fields"]["keyword"]["type"] == "keyword"
    text = "Crème brûlée — O'Brien's E-MAIL: 3.14 Ärger naïve FAÇADE Straße 東京都 x_y"
    indexed = source(_doc("x", text, text))
    for field in ("title_words", "body_words"):
        tokens = corpus.client.indices.analyze(index=corpus.alias, field=field, text=indexed[field])["tokens"]
        assert [t["token"] for t in tokens] == words_of(text)
    stored = corpus.client.get(index=corpus.alias, id="cafe")["_source"]
    assert "body_words" not in stored and stored["body"] == CORPUS[3].body  # the text is kept once, as written


def test_sorting_and_paging(es_backend) -> None:  # noqa: ANN001
    same_time = "2025-05-05T05:05:05"
    es_backend.upsert(None, [_doc(f"d{i}", "Note", "payment due", created=same_time) for i in range(1, 6)] +
                      [_doc("a-title", "Payment plan", "the plan", created="2020-01-01T00:00:00")])
    es_backend.refresh()

    def page(**kwargs) -> list[str]:  # noqa: ANN003
        return [h.document_id for h in es_backend.search(None, _query("payment", **kwargs)).hits]

    assert page(sort="newest") == ["d5", "d4", "d3", "d2", "d1", "a-title"]  # ties: document id
    assert page(sort="oldest") == ["a-title", "d1", "d2", "d3", "d4", "d5"]
    assert page(sort="newest", offset=2, limit=2) == ["d3", "d2"]
    assert page()[0] == "a-title"  # relevance: a title match weighs more (as in FTS5)
    ranked = page()
    assert sorted(ranked[1:]) == ["d1", "d2", "d3", "d4", "d5"]  # equal scores: index order, the same every page
    assert page(offset=1, limit=2) + page(offset=3, limit=3) == ranked[1:]
    result = es_backend.search(None, _query("payment", offset=4, limit=4))
    assert result.total == 6 and len(result.hits) == 2


def test_a_long_phrase_matches_exactly_and_ranks_by_where_and_how_often_it_occurs(es_backend) -> None:  # noqa: ANN001
    es_backend.upsert(None, [
        _doc("once", "Note", "a late payment fee was charged"),
        _doc("twice", "Note", "a late payment fee and then another late payment fee"),
        _doc("title", "Late payment fee", "notice"),
        _doc("pairs", "Note", "a late payment was made and the payment fee waived"),  # both pairs, not the phrase
        _doc("shuffled", "Note", "fee payment late"),
    ])
    es_backend.refresh()
    result = es_backend.search(None, _query('"late payment fee"'))
    assert [h.document_id for h in result.hits] == ["title", "twice", "once"]
    assert result.total == 3 and result.facets["document_type"] == {"t-letter": 3}
    assert _ids(es_backend, 'fee -"late payment fee"') == {"pairs", "shuffled"}
    assert _ids(es_backend, '"late payment fee" OR waived') == {"title", "twice", "once", "pairs"}


def test_the_top_twenty_customers(es_backend) -> None:  # noqa: ANN001
    docs = [_doc(f"one-{i:02d}", "Letter", "text", customer=f"cust-{i:02d}") for i in range(21)]
    docs += [_doc(f"many-{i}", "Letter", "text", customer="cust-99") for i in range(3)]
    es_backend.upsert(None, docs)
    es_backend.refresh()
    customers = es_backend.search(None, _query()).facets["customer"]
    assert list(customers.items()) == [("cust-99", 3)] + [(f"cust-{i:02d}", 1) for i in range(19)]


def test_revisions_versions_and_deletes(es_backend) -> None:  # noqa: ANN001
    es_backend.upsert(None, [_doc("a", "Title", "newer text", revision=2), _doc("b", "Title", "b text")])
    es_backend.upsert(None, [_doc("a", "Title", "older text", revision=1)])  # late and stale: ignored
    es_backend.refresh()
    assert es_backend.revisions(None, ["a", "b", "absent"]) == {"a": 2, "b": 1}
    assert _ids(es_backend, "newer") == {"a"} and _ids(es_backend, "older") == set()
    es_backend.upsert(None, [_doc("a", "Title", "newer text", revision=2, restricted=True)])  # same revision
    es_backend.refresh()
    assert _ids(es_backend, "newer") == set()
    es_backend.delete(None, ["b", "absent"])
    es_backend.refresh()
    assert es_backend.count(None) == 1 and es_backend.revisions(None, ["b"]) == {}


def test_rebuild_swaps_the_alias_while_searches_keep_answering(es_backend) -> None:  # noqa: ANN001
    es_backend.upsert(None, [_doc(f"old-{i}", "Old", "archive letter") for i in range(3)])
    es_backend.refresh()
    old_index = es_backend.live_index()
    answers: list[set[str]] = []
    failures: list[Exception] = []
    stop = threading.Event()

    def keep_searching() -> None:
        while not stop.is_set():
            try:
                answers.append(_ids(es_backend, "letter"))
            except Exception as exc:  # any failure is a downtime
                failures.append(exc)

    searcher = threading.Thread(target=keep_searching)
    searcher.start()
    try:
        rebuild = es_backend.rebuild(None)
        rebuild.upsert(None, [_doc(f"new-{i}", "New", "fresh letter") for i in range(2)])
        es_backend.upsert(None, [_doc("late", "Late", "late letter")])  # a live write during the rebuild
        es_backend.refresh()
        assert _ids(es_backend, "letter") == {"old-0", "old-1", "old-2", "late"}  # still the old index
        rebuild.commit(None)
        assert _ids(es_backend, "letter") == {"new-0", "new-1", "late"}  # the new one, with the live write
        time.sleep(0.5)
    finally:
        stop.set()
        searcher.join()
    assert not failures
    old, new = {"old-0", "old-1", "old-2"}, {"new-0", "new-1", "late"}
    assert answers and all(a in (old, old | {"late"}, new) for a in answers)
    assert es_backend.live_index() != old_index
    assert not es_backend.client.indices.exists(index=old_index)  # dropped after the swap
    assert not es_backend.client.indices.exists_alias(name=es_backend.building)


@pytest.mark.parametrize("version", [1, 2])  # 1: before `year`; 2: before `type_and_year`
def test_an_index_made_by_an_earlier_version_keeps_working_until_reindexed(version: int) -> None:
    alias = new_alias()
    client = Elasticsearch(es_url(), request_timeout=30)
    newer = {"year", "type_and_year"} if version == 1 else {"type_and_year"}
    old_properties = {k: v for k, v in MAPPINGS["properties"].items() if k not in newer}
    old_properties |= {k: {"type": "text", "analyzer": "whitespace"} for k in ("title_words", "body_words")}
    client.indices.create(index=f"{alias}-00000000000000000000", aliases={alias: {}},
                          mappings={"dynamic": "strict", "_source": MAPPINGS["_source"], "properties": old_properties,
                                    **({"_meta": {"mappings": version}} if version > 1 else {})})
    old_source = {k: v for k, v in source(_doc("old", "Old", "archived letter", created="2023-05-05T00:00:00")).items()
                  if k not in newer}
    client.index(index=alias, id="old", document=old_source, refresh=True)
    backend = backend_for(es_url(), alias)
    try:
        backend.upsert(None, [_doc("new", "New", "fresh letter", created="2025-05-05T00:00:00")])  # strict: no error
        backend.refresh()
        result = backend.search(None, _query('"archived letter" OR "fresh letter"'))
        assert result.total == 2 and result.facets["year"] == {"2025": 1, "2023": 1}  # counted from what it has
        assert result.facets["document_type"] == {"t-letter": 2}
        started_again = backend_for(es_url(), alias)  # the index has the new fields now, not every document does
        assert started_again.search(None, _query('"archived letter"')).facets == {
            "document_type": {"t-letter": 1}, "year": {"2023": 1}, "customer": {}}
        started_again.close()
        rebuild = backend.rebuild(None)
        rebuild.upsert(None, [_doc("old", "Old", "archived letter", created="2023-05-05T00:00:00"),
                              _doc("new", "New", "fresh letter", created="2025-05-05T00:00:00")])
        rebuild.commit(None)
        result = backend.search(None, _query('"archived letter" OR "fresh letter"'))
        assert result.total == 2 and result.facets["year"] == {"2025": 1, "2023": 1}  # from the year field
        restarted = backend_for(es_url(), alias)
        assert restarted.search(None, _query('"archived letter"')).facets["year"] == {"2023": 1}
        mapping = client.indices.get_mapping(index=alias)[backend.live_index()]["mappings"]
        assert mapping["_meta"] == MAPPINGS["_meta"] and mapping["properties"]["body_words"]["index_phrases"]
        restarted.close()
    finally:
        backend.close()
        client.close()
        drop_indices(alias)


def test_an_aborted_rebuild_leaves_the_live_index(es_backend) -> None:  # noqa: ANN001
    es_backend.upsert(None, [_doc("kept", "Kept", "kept letter")])
    live = es_backend.live_index()
    rebuild = es_backend.rebuild(None)
    rebuild.upsert(None, [_doc("other", "Other", "other letter")])
    rebuild.abort(None)
    es_backend.refresh()
    assert es_backend.live_index() == live and _ids(es_backend, "letter") == {"kept"}
    assert not es_backend.client.indices.exists(index=rebuild.index)


def test_elasticsearch_down_raises_search_unavailable() -> None:
    backend = backend_for(dead_url(), new_alias())
    started = time.monotonic()
    try:
        for call in (lambda: backend.search(None, _query("letter")),
                     lambda: backend.upsert(None, [_doc("a", "A", "a")]),
                     lambda: backend.delete(None, ["a"]),
                     lambda: backend.revisions(None, ["a"]),
                     lambda: backend.count(None)):
            with pytest.raises(SearchUnavailableError):
                call()
    finally:
        backend.close()
    assert time.monotonic() - started < 10  # refused connections fail fast, the outbox retries later


@given(st.text(max_size=200) | st.text(alphabet=st.characters(max_codepoint=127), max_size=200))
def test_the_indexed_words_are_words_of(text) -> None:  # noqa: ANN001
    assert words(text) == " ".join(words_of(text))


def test_an_alias_deleted_behind_our_back_is_recreated(es_backend) -> None:  # noqa: ANN001
    es_backend.upsert(None, [_doc("a", "A", "letter")])
    es_backend.client.indices.delete(index=es_backend.live_index())
    with pytest.raises(SearchUnavailableError, match="reindex"):  # this call finds it gone ...
        es_backend.search(None, _query("letter"))
    es_backend.upsert(None, [_doc("b", "B", "letter")])  # ... the next makes a new index (reindex refills it)
    es_backend.refresh()
    assert _ids(es_backend, "letter") == {"b"}
