"""Search on Elasticsearch (ops/elasticsearch.sh): documents indexed through the outbox indexer
(`search.indexing.drain`: claim, read, write search_entries, bulk to Elasticsearch, dequeue), against one
`helpers.bulk` of the same documents straight into a scratch index; then p95 latency of typical help-desk
queries through `search.service.search`, against the same queries on FTS5 over the same documents.

Targets (issue 6): >= 1,000 documents/s through the outbox; p95 < 50 ms. `POSTROOM_BENCH_ES_DOCS` sets the
corpus size (default 50,000; the issue asks for 1,000,000 where the machine holds them).

`test_help_desk_queries_on_a_million_documents` measures the latency at `POSTROOM_BENCH_ES_QUERY_DOCS` documents
(default 1,000,000; ~10 minutes): the documents are in the database and bulk-loaded straight into Elasticsearch
(the outbox's rate is the first test's figure), and each query through `search.service.search` is timed against
Elasticsearch's floor for the same matching in the same run: the top 20 by score alone, without facets,
snippets or an exact total.

Both tests time a settled, warm node: the shard request cache off, the merges of the load waited out and their
segments refreshed in, and every query run WARM_ROUNDS times uncounted first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import insert, select

from tests.bench.test_search_bench import FIRST, LAST, PHRASES, _body, _p95, _vocabulary

N_DOCS = int(os.environ.get("POSTROOM_BENCH_ES_DOCS", "50000"))
N_QUERY_DOCS = int(os.environ.get("POSTROOM_BENCH_ES_QUERY_DOCS", "1000000"))
RUNS = 40
WARM_ROUNDS = 20
YEAR_FROM, YEAR_TO = dt.datetime(2023, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
QUERIES = {
    "customer name": dict(q="ada lovelace"),
    "phrase": dict(q='"late payment fee"'),
    "type + year": dict(q="payment", document_type="letter", created_from=YEAR_FROM, created_to=YEAR_TO),
    "prefix": dict(q="overdr*"),
    "name OR name": dict(q="hopper OR liskov", sort="newest"),
}


def _load(session, type_ids: list[str], author_id: str) -> None:  # noqa: ANN001
    """Documents with a current version whose text is already in search_entries (so nothing is extracted)."""
    from repository.models import Customer

    customers = [Customer(external_ref=f"C-{i}", name=f"Customer {i}") for i in range(2000)]
    session.add_all(customers)
    session.flush()
    docs, versions, entries = [], [], []
    for row, doc in _documents(type_ids, author_id, [c.id for c in customers], N_DOCS):
        created, sha = row["created_at"], hashlib.sha256(doc.document_id.encode()).hexdigest()
        docs.append(row)
        versions.append({"id": str(uuid.uuid5(uuid.NAMESPACE_OID, doc.document_id)), "document_id": doc.document_id,
                         "major": 1, "minor": 0, "blob_key": sha, "sha256": sha, "size": 600,
                         "media_type": "text/plain", "filename": "letter.txt", "created_by": author_id,
                         "created_at": created})
        entries.append({"document_id": doc.document_id, "revision": 1, "version": "1.0", "content_sha256": sha,
                        "title": doc.title, "body": doc.body, "document_type_id": doc.document_type_id,
                        "customer_id": doc.customer_id, "created_at": created, "year": created.year,
                        "restricted": False, "meta": {}, "text_status": "ok", "indexed_at": created})
        if len(docs) == 5000:
            _insert(session, docs, versions, entries)
    _insert(session, docs, versions, entries)


def _insert(session, docs: list[dict], versions: list[dict], entries: list[dict]) -> None:  # noqa: ANN001
    """Insert the rows gathered so far and empty the lists."""
    from repository.models import Document, DocumentVersion
    from search.models import SearchEntry

    for model, rows in ((Document, docs), (DocumentVersion, versions), (SearchEntry, entries)):
        if rows:
            session.execute(insert(model), rows)
        rows.clear()


def _direct_bulk(url: str, alias: str) -> float:
    """Seconds for one helpers.bulk of every search_entries row into a scratch index (the baseline)."""
    from elasticsearch import Elasticsearch, helpers

    from repository.db import transaction
    from search._elastic_query import MAPPINGS, SETTINGS, source
    from search.backend import IndexDoc
    from search.models import SearchEntry

    client = Elasticsearch(url, request_timeout=120)
    scratch = f"{alias}-scratch"
    client.indices.create(index=scratch, mappings=MAPPINGS, settings=SETTINGS)
    with transaction(readonly=True) as session:
        docs = [IndexDoc(document_id=e.document_id, revision=e.revision, title=e.title, body=e.body,
                         document_type_id=e.document_type_id, document_type="", customer_id=e.customer_id,
                         created_at=e.created_at, metadata={}, text_status="ok")
                for e in session.execute(select(SearchEntry)).scalars()]
    began = time.perf_counter()
    helpers.bulk(client, ({"_index": scratch, "_id": d.document_id, "_source": source(d)} for d in docs),
                 chunk_size=500)
    elapsed = time.perf_counter() - began
    client.indices.delete(index=scratch)
    client.close()
    return elapsed


@dataclass
class Desk:
    """A migrated embedded repository searching a fresh Elasticsearch alias, and a help-desk user."""

    url: str
    alias: str
    engine: Any
    user: Any
    types: dict[str, str]


@pytest.fixture
def desk(monkeypatch, tmp_path) -> Iterator[Desk]:  # noqa: ANN001
    """The bench's repository on Elasticsearch; the alias's indices are dropped afterwards."""
    from repository import identity, runtime
    from repository.db import get_engine, transaction
    from repository.migrate import upgrade
    from repository.models import DocumentType
    from search.backend import reset_backends
    from tests.conftest import configure
    from tests.search.elastic_support import drop_indices, es_url, new_alias

    url, alias = es_url(), new_alias()
    configure(monkeypatch, tmp_path)
    monkeypatch.setenv("POSTROOM_SEARCH_BACKEND", "elasticsearch")
    monkeypatch.setenv("POSTROOM_ELASTICSEARCH_URL", url)
    monkeypatch.setenv("POSTROOM_ELASTICSEARCH_INDEX", alias)
    runtime.reset()
    reset_backends()
    engine = get_engine()
    upgrade(engine)
    try:
        with transaction() as session:
            user = identity.create_user(session, username="desk", password="bench-password", roles=["helpdesk"],
                                        actor="bench")
            session.flush()
            session.expunge(user)
            types = {t.name: t.id for t in session.execute(select(DocumentType)).scalars()}
        yield Desk(url, alias, engine, user, types)
    finally:
        reset_backends()
        engine.dispose()
        runtime.reset()
        drop_indices(alias)


def test_elasticsearch_indexing_and_help_desk_queries(monkeypatch, desk: Desk) -> None:  # noqa: ANN001
    from repository import runtime
    from repository.db import transaction
    from search import indexing, service
    from search.backend import get_backend, reset_backends

    url, alias, engine, user, types = desk.url, desk.alias, desk.engine, desk.user, desk.types
    with transaction() as session:
        _load(session, [types["letter"], types["correspondence"], types["general"]], user.id)
    service.enqueue_all(engine)
    began = time.perf_counter()
    indexed = indexing.drain(engine)
    outbox = time.perf_counter() - began
    backend = get_backend()
    direct = _direct_bulk(url, alias)
    print(f"\nindexed {indexed} documents through the outbox in {outbox:.1f} s: {indexed / outbox:.0f}/s; "
          f"one direct helpers.bulk: {N_DOCS / direct:.0f}/s; ratio {outbox / direct:.2f}")
    print(f"settled at {_settle(backend)} segments")
    worst = 0.0
    for name, params in QUERIES.items():
        timings = {}
        for kind in ("elasticsearch", "sqlite"):
            monkeypatch.setenv("POSTROOM_SEARCH_BACKEND", kind)
            runtime.reset()
            reset_backends()
            if name == next(iter(QUERIES)):
                _warm(service, transaction, user)
            samples = []
            for _ in range(RUNS):
                t0 = time.perf_counter()
                with transaction(readonly=True) as session:
                    page = service.search(session, actor=user, **params)
                samples.append(time.perf_counter() - t0)
            timings[kind] = (_p95(samples), statistics.median(samples), page.total)
        (p95, p50, total), (f_p95, _, f_total) = timings["elasticsearch"], timings["sqlite"]
        assert total == f_total, name
        worst = max(worst, p95)
        print(f"{name:14s} total {total:7d}  p50 {p50 * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms  "
              f"FTS5 p95 {f_p95 * 1000:6.1f} ms  ratio {p95 / f_p95:5.2f}")
    print(f"worst p95 {worst * 1000:.1f} ms over {N_DOCS} documents; target < 50 ms")
    assert indexed / outbox >= 1000
    assert worst < 0.050


def _warm(service, transaction, user) -> None:  # noqa: ANN001
    """Run every query WARM_ROUNDS times, uncounted: the query timed first after a load ran 2-4x slower than the
    same query timed later (see tests/bench/README.md), and a help-desk node in service is warm."""
    for _ in range(WARM_ROUNDS):
        for params in QUERIES.values():
            with transaction(readonly=True) as session:
                service.search(session, actor=user, **params)


def _documents(type_ids: list[str], author_id: str, customers: list[str], n: int):  # noqa: ANN202
    """(Document row, IndexDoc) pairs of the bench corpus, generated as the first test's `_load` does."""
    from search.backend import IndexDoc

    rng = random.Random(7)
    words = _vocabulary(rng)
    start = dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
    for _ in range(n):
        doc_id = str(uuid.UUID(int=rng.getrandbits(128)))
        created = start + dt.timedelta(minutes=rng.randint(0, 60 * 24 * 365 * 7))
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        type_id, customer = rng.choice(type_ids), rng.choice(customers)
        title = f"{rng.choice(PHRASES).title()} for {name.title()}"
        row = {"id": doc_id, "title": title, "document_type_id": type_id, "meta": {}, "state": "active",
               "current_major": 1, "current_minor": 0, "revision": 1, "created_by": author_id,
               "created_at": created, "updated_at": created, "restricted": False, "customer_id": customer}
        yield row, IndexDoc(document_id=doc_id, revision=1, title=title, body=_body(rng, words, name),
                            document_type_id=type_id, document_type="", customer_id=customer, created_at=created,
                            metadata={}, text_status="ok")


def _load_million(backend, type_ids: list[str], author_id: str) -> int:  # noqa: ANN001
    """N_QUERY_DOCS documents into the database (5,000 a transaction) and straight into the live index; answer
    the segment count once settled."""
    from elasticsearch import helpers
    from sqlalchemy import insert

    from repository.db import transaction
    from repository.models import Customer, Document
    from search._elastic_query import source

    with transaction() as session:
        customers = [Customer(external_ref=f"C-{i}", name=f"Customer {i}") for i in range(N_QUERY_DOCS // 100)]
        session.add_all(customers)
        session.flush()
        customer_ids = [c.id for c in customers]
    backend.count(None)  # creates the index behind the alias
    backend.client.indices.put_settings(index=backend.alias, settings={"index": {"refresh_interval": "-1"}})
    pairs = _documents(type_ids, author_id, customer_ids, N_QUERY_DOCS)
    rows: list[dict] = []

    def actions():  # noqa: ANN202
        for row, doc in pairs:
            rows.append(row)
            if len(rows) == 5000:
                with transaction() as session:
                    session.execute(insert(Document), rows)
                rows.clear()
            yield {"_index": backend.alias, "_id": doc.document_id, "_source": source(doc)}

    for ok, item in helpers.parallel_bulk(backend.client, actions(), thread_count=2, chunk_size=1000,
                                          queue_size=4):
        assert ok, item
    if rows:
        with transaction() as session:
            session.execute(insert(Document), rows)
    backend.client.indices.put_settings(index=backend.alias, settings={"index": {"refresh_interval": None}})
    return _settle(backend)


def _settle(backend) -> int:  # noqa: ANN001
    """Turn off the shard request cache, flush, and wait out the merges a bulk load leaves; answer the segment
    count searches then see.

    The facets search has no hits (size 0), so Elasticsearch would answer its repeats from the shard request
    cache; a new query finds nothing there, and that is what the benches measure. The merges compete with
    queries for the two cores, and a merge's result is searched only after the next refresh: without one, a
    million-document load settled at 29 segments seen, and the first timed queries woke the idle shard, whose
    refresh swapped in 15 (likely the earlier runs' slow first query). Settled: no merge running, and a refresh that
    changes nothing."""
    client, alias = backend.client, backend.alias
    client.indices.put_settings(index=alias, settings={"index": {"requests.cache.enable": False}})
    backend.refresh()
    client.indices.flush(index=alias)
    last, seen, settled = None, (0, 0), time.monotonic() + 1800
    while time.monotonic() < settled:
        backend.refresh()
        stats = client.indices.stats(index=alias, metric="merge,segments")["_all"]["primaries"]
        seen = (stats["merges"]["total"], stats["segments"]["count"])
        if stats["merges"]["current"] == 0 and seen == last:
            break
        last = seen
        time.sleep(10)
    return seen[1]


@pytest.mark.timeout(3600)  # loading a million documents takes 5-15 minutes, with the host's speed
def test_help_desk_queries_on_a_million_documents(monkeypatch, desk: Desk) -> None:  # noqa: ANN001
    from repository.db import transaction
    from search import service
    from search._elastic_query import search_bodies
    from search.backend import SearchQuery, get_backend

    alias, user, types = desk.alias, desk.user, desk.types
    backend = get_backend()
    began = time.perf_counter()
    segments = _load_million(backend, [types["letter"], types["correspondence"], types["general"]], user.id)
    print(f"\nloaded {N_QUERY_DOCS} documents and settled in {time.perf_counter() - began:.0f} s "
          f"({backend.client.count(index=alias)['count']} in the index, {segments} segments)")
    _warm(service, transaction, user)
    worst = 0.0
    for name, params in QUERIES.items():
        asked: list[SearchQuery] = []  # the query the service hands the backend: the floor matches the same
        with monkeypatch.context() as patch:
            patch.setattr(backend, "search", lambda session, query, search=backend.search, asked=asked:
                          asked.append(query) or search(session, query))
            with transaction(readonly=True) as session:
                service.search(session, actor=user, **params)
        floor = {"query": search_bodies(asked[0])[0]["query"], "size": 20, "track_total_hits": False,
                 "_source": False}
        samples, floor_samples = [], []
        for _ in range(RUNS):  # interleaved, so both see the same moments of this machine
            t0 = time.perf_counter()
            with transaction(readonly=True) as session:
                page = service.search(session, actor=user, **params)
            samples.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            backend.client.search(index=alias, body=floor, request_cache=False)
            floor_samples.append(time.perf_counter() - t0)
        p95, floor_p95 = _p95(samples), _p95(floor_samples)
        worst = max(worst, p95)
        assert len(page.hits) == 20
        print(f"{name:14s} total {page.total:7d}  p50 {statistics.median(samples) * 1000:6.1f} ms  "
              f"p95 {p95 * 1000:6.1f} ms  floor p50 {statistics.median(floor_samples) * 1000:6.1f} "
              f"p95 {floor_p95 * 1000:6.1f} ms  ratio {p95 / floor_p95:5.2f}")
    print(f"worst p95 {worst * 1000:.1f} ms over {N_QUERY_DOCS} documents; target < 50 ms")
    assert worst < 0.050
