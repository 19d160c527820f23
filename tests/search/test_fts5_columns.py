"""The embedded backend's fast path: filters as FTS5 tokens, facets and date order from the in-memory facet
columns, and the ranking split over two connections. Every answer is checked against the SQL path over
search_entries (which the backend falls back to), and the columns against later writes, a pruned change log
and an older snapshot."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from repository import runtime
from repository.db import get_engine, transaction
from repository.migrate import upgrade
from repository.models import DocumentType
from search import _columns, _fts5, _fts5_ranking
from search import service as search
from search.errors import QuerySyntaxError
from search.models import SearchEntry
from tests.conftest import configure
from tests.records.support import make_customer, user
from tests.search.support import add, settle, start

UTC = dt.UTC


@pytest.fixture
def embedded(monkeypatch, tmp_path) -> Iterator[None]:  # noqa: ANN001
    configure(monkeypatch, tmp_path)
    upgrade(get_engine())
    _columns.forget()
    start()
    yield
    _columns.forget()
    get_engine().dispose()
    runtime.reset()


def _dated(document_id: str, when: dt.datetime) -> None:
    with transaction() as session:
        session.execute(update(SearchEntry).where(SearchEntry.document_id == document_id)
                        .values(created_at=when, year=when.astimezone(UTC).year))


@pytest.fixture
def corpus(embedded):  # noqa: ANN001, ANN201
    author = user("alice", "author", "admin")
    customers = [make_customer(author, "C-1"), make_customer(author, "C-2")]
    dates = [dt.datetime(2022, 12, 31, 23, 30, tzinfo=UTC), dt.datetime(2023, 1, 1, tzinfo=UTC),
             dt.datetime(2023, 6, 15, 9, tzinfo=UTC), dt.datetime(2023, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
             dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 7, 1, 12, tzinfo=UTC),
             dt.datetime(2025, 3, 1, tzinfo=UTC), dt.datetime(2019, 5, 5, tzinfo=UTC)]
    ids = []
    for i in range(len(dates)):
        # i + 1 mentions of "payment" among the same filler: each later text ranks above the one before.
        text = " ".join(["payment"] * (i + 1) + ["filler"] * 5 + [f"word{i}"])
        ids.append(add(author, text, title=f"Letter {i}", document_type="letter" if i % 2 else "general",
                       customer_id=customers[i % 3] if i % 3 < 2 else None))
    settle()
    for doc, when in zip(ids, dates, strict=True):
        _dated(doc, when)
    return author, customers, ids, dates


def _page(actor, **kwargs):  # noqa: ANN001, ANN202
    with transaction(readonly=True) as session:
        return search.search(session, actor=actor, **kwargs)


def _stale(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    raise _columns.StaleColumnsError


def _agree(actor, monkeypatch, **kwargs):  # noqa: ANN001, ANN202
    """The fast path's page, after checking the SQL path gives the same total, facets and hits in order."""
    fast = _page(actor, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(_fts5, "_search_columns", _stale)
        slow = _page(actor, **kwargs)
    assert (fast.total, fast.facets) == (slow.total, slow.facets)
    assert [h.document_id for h in fast.hits] == [h.document_id for h in slow.hits]
    assert [h.snippet for h in fast.hits] == [h.snippet for h in slow.hits]
    return fast


def _ids(page) -> list[str]:  # noqa: ANN001
    return [h.document_id for h in page.hits]


def test_filters_in_the_match_give_the_same_answers_as_sql(corpus, monkeypatch) -> None:  # noqa: ANN001
    author, customers, ids, _ = corpus
    everything = _agree(author, monkeypatch, q="payment")
    assert everything.total == 8 and _ids(everything) == ids[::-1]
    assert everything.facets["year"] == {"2025": 1, "2024": 2, "2023": 3, "2022": 1, "2019": 1}
    assert everything.facets["customer"] == {customers[0]: 3, customers[1]: 3}
    assert set(_ids(_agree(author, monkeypatch, q="payment", customer_id=customers[1]))) == {ids[1], ids[4], ids[7]}
    assert set(_ids(_agree(author, monkeypatch, q="payment", document_type="letter"))) == set(ids[1::2])
    whole_2023 = _agree(author, monkeypatch, q="payment", created_from=dt.datetime(2023, 1, 1, tzinfo=UTC),
                        created_to=dt.datetime(2024, 1, 1, tzinfo=UTC))
    assert set(_ids(whole_2023)) == {ids[1], ids[2], ids[3]}
    plus_two = dt.timezone(dt.timedelta(hours=2))  # 2023-06-15 09:00 UTC is 11:00 here
    part = _agree(author, monkeypatch, q="payment", created_from=dt.datetime(2023, 6, 15, 11, tzinfo=plus_two),
                  created_to=dt.datetime(2024, 7, 1, 12, tzinfo=UTC))
    assert set(_ids(part)) == {ids[2], ids[3], ids[4]}
    assert set(_ids(_agree(author, monkeypatch, q="payment", created_from=dt.datetime(2024, 1, 1, tzinfo=UTC)))) \
        == {ids[4], ids[5], ids[6]}
    assert set(_ids(_agree(author, monkeypatch, q="payment", created_to=dt.datetime(2023, 1, 1, tzinfo=UTC)))) \
        == {ids[0], ids[7]}
    decades = _agree(author, monkeypatch, q="payment", created_from=dt.datetime(2000, 1, 1, tzinfo=UTC),
                     created_to=dt.datetime(2030, 1, 1, tzinfo=UTC))
    assert decades.total == 8
    narrow = _agree(author, monkeypatch, q="payment", document_type="general", customer_id=customers[0],
                    created_from=dt.datetime(2022, 12, 31, 23, 30, tzinfo=UTC),
                    created_to=dt.datetime(2022, 12, 31, 23, 30, 0, 1, tzinfo=UTC))
    assert _ids(narrow) == [ids[0]]


def test_date_order_and_paging_match_sql(corpus, monkeypatch) -> None:  # noqa: ANN001
    author, _, ids, dates = corpus
    by_date = [doc for _, doc in sorted(zip(dates, ids, strict=True))]
    newest = _agree(author, monkeypatch, q="payment", sort="newest", limit=3)
    rest = _agree(author, monkeypatch, q="payment", sort="newest", limit=3, cursor=newest.next_cursor)
    assert _ids(newest) + _ids(rest) == by_date[::-1][:6]
    assert _ids(_agree(author, monkeypatch, q="payment", sort="oldest", limit=4)) == by_date[:4]
    second = _agree(author, monkeypatch, q="payment", limit=3, cursor=newest.next_cursor)
    assert _ids(second) == [ids[4], ids[3], ids[2]]


def test_filter_tokens_are_not_searchable_text(corpus) -> None:  # noqa: ANN001
    author, customers, _, _ = corpus
    with transaction(readonly=True) as session:
        general = session.execute(select(DocumentType.id).where(DocumentType.name == "general")).scalar_one()
    for q in ("y2023", "r0", "r1", "t" + general.encode().hex(), "c" + customers[0].encode().hex(), "tags"):
        assert _page(author, q=q).total == 0, q


def test_the_columns_follow_every_change(corpus, monkeypatch) -> None:  # noqa: ANN001
    author, customers, ids, _ = corpus
    monkeypatch.setattr(_fts5, "_search_sql", _stale)  # the fast path must answer every query here
    assert _page(author, q="payment").facets["year"]["2019"] == 1
    _dated(ids[7], dt.datetime(2018, 2, 2, tzinfo=UTC))
    with transaction() as session:
        session.execute(update(SearchEntry).where(SearchEntry.document_id == ids[2])
                        .values(customer_id=customers[1]))
    new = add(author, "one more payment", title="Late", customer_id=customers[1])
    settle()
    page = _page(author, q="payment")
    assert page.total == 9
    assert "2019" not in page.facets["year"] and page.facets["year"]["2018"] == 1
    assert page.facets["customer"] == {customers[1]: 5, customers[0]: 3}
    assert _ids(_page(author, q="payment", sort="newest", limit=1)) == [new]


def test_a_process_behind_the_pruned_log_reloads(corpus, monkeypatch) -> None:  # noqa: ANN001
    author, _, ids, _ = corpus
    monkeypatch.setattr(_fts5, "_search_sql", _stale)
    assert _page(author, q="payment").total == 8
    monkeypatch.setattr(_fts5, "KEEP_CHANGES", 1)
    later = [add(author, f"payment number {i}", title=f"Later {i}") for i in range(3)]
    settle()
    with transaction(readonly=True) as session:
        floor = session.connection().exec_driver_sql("SELECT min(seq) FROM search_fts_changes").scalar()
    columns = _columns.columns_for(str(get_engine().url))
    assert floor > columns.seq + 1  # what this process applied last is gone from the log
    page = _page(author, q="payment", sort="newest", limit=3)
    assert page.total == 11 and set(_ids(page)) == set(later)
    assert sum(page.facets["document_type"].values()) == 11


def test_an_older_snapshot_takes_the_sql_path(corpus, monkeypatch) -> None:  # noqa: ANN001
    author, _, _, _ = corpus
    calls = []
    real = _fts5._search_sql
    monkeypatch.setattr(_fts5, "_search_sql", lambda *a: calls.append(1) or real(*a))
    with transaction(readonly=True) as old:
        before = search.search(old, actor=author, q="payment")
        add(author, "a payment written meanwhile")
        settle()
        assert _page(author, q="payment").total == 9  # the columns move on
        again = search.search(old, actor=author, q="payment")
    assert calls == [1]
    assert (again.total, again.facets, _ids(again)) == (before.total, before.facets, _ids(before))


def test_a_split_ranking_equals_one_query(embedded, monkeypatch) -> None:  # noqa: ANN001
    author = user("alice", "author", "admin")
    for i in range(30):
        add(author, " ".join(["payment"] * (1 + i % 7) + ["other"] * i), title=f"Doc {i}")
    settle()
    whole = [_ids(_page(author, q="payment", limit=10, cursor=c)) for c in (None, search._cursor(10))]
    halves = []
    real = _fts5_ranking._scores
    monkeypatch.setattr(_fts5_ranking, "_scores", lambda conn, match, low, high, count:
                        halves.append((low, high)) or real(conn, match, low, high, count))
    monkeypatch.setattr(_fts5_ranking, "SPLIT_AT", 2)
    split = [_ids(_page(author, q="payment", limit=10, cursor=c)) for c in (None, search._cursor(10))]
    # Here only the lower half of the 30 matches was scored each time; the helper process scored the rest.
    assert len(halves) == 2 and all(high - low < 20 for low, high in halves)
    assert split == whole and len(set(whole[0] + whole[1])) == 20


def test_migration_0014_rebuilds_the_index_both_ways(corpus, monkeypatch) -> None:  # noqa: ANN001
    from alembic import command
    from sqlalchemy import text

    from repository.migrate import alembic_config

    author, customers, ids, _ = corpus
    engine = get_engine()
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0013")
    with engine.connect() as conn:  # the 0010 index: title and body only, still complete
        assert conn.execute(text("SELECT count(*) FROM search_fts WHERE search_fts MATCH 'payment'")).scalar() == 8
        assert conn.execute(text("SELECT count(*) FROM sqlite_master WHERE name = 'search_fts_changes'")).scalar() == 0
    upgrade(engine)
    _columns.forget()
    monkeypatch.setattr(_fts5, "_search_sql", _stale)
    page = _page(author, q="payment", customer_id=customers[0], document_type="general")
    assert {h.document_id for h in page.hits} == {ids[0], ids[6]}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM search_fts WHERE search_fts MATCH 'tags : r0'")).scalar() == 8


def _head(conn) -> int:  # noqa: ANN001
    return conn.execute("SELECT coalesce((SELECT max(seq) FROM search_fts_changes), 0)").fetchone()[0]


def test_a_failing_helper_leaves_the_query_to_score_both_halves(corpus, monkeypatch, caplog) -> None:  # noqa: ANN001
    match = '{title body} : "payment"'
    database = str(get_engine().url.database)
    monkeypatch.setattr(_fts5_ranking, "RETRY_AFTER", 0.0)
    with transaction(readonly=True) as session:
        conn = session.connection().connection.driver_connection
        seq = _head(conn)
        alone = _fts5_ranking.matches_and_best(conn, None, seq, match, None, 5)
        helped = _fts5_ranking.matches_and_best(conn, database, seq, match, 4, 5)
        failed = _fts5_ranking.matches_and_best(conn, "/nonexistent/postroom.db", seq, match, 4, 5)
        real = _fts5_ranking.matches
        calls = []

        def broken(*args):  # noqa: ANN002, ANN202 - the query's own half fails after the request went out
            calls.append(1)
            if len(calls) == 1:
                raise sqlite3.OperationalError("disk I/O error")
            return real(*args)

        monkeypatch.setattr(_fts5_ranking, "matches", broken)
        with pytest.raises(sqlite3.OperationalError):
            _fts5_ranking.matches_and_best(conn, database, seq, match, 4, 5)
        after = _fts5_ranking.matches_and_best(conn, database, seq, '{title body} : "word7"', 4, 5)
    assert alone[0].tolist() == helped[0].tolist() == failed[0].tolist() and len(alone[0]) == 8
    assert alone[1] == helped[1] == failed[1] and len(alone[1]) == 5
    assert "ranking helper failed" in caplog.text
    assert after[0].tolist() == [after[1][0][0]] and len(after[1]) == 1  # its own answer, not the lost one's


def test_the_helper_answers_only_from_the_callers_snapshot(corpus, monkeypatch) -> None:  # noqa: ANN001
    author, _, ids, _ = corpus
    monkeypatch.setattr(_fts5_ranking, "SPLIT_AT", 2)
    stale = []
    real = _fts5_ranking._Helper.receive
    monkeypatch.setattr(_fts5_ranking._Helper, "receive", lambda self: stale.append(1) or real(self))
    with transaction(readonly=True) as old:
        before = search.search(old, actor=author, q="payment")
        helper = _fts5_ranking._HELPER._process
        with transaction() as session:  # the newest entry goes, in another transaction
            from repository import service

            service.trash_document(session, actor=author, document_id=ids[-1])
        settle()
        again = search.search(old, actor=author, q="payment")
    assert len(stale) == 2
    assert helper is not None and _fts5_ranking._HELPER._process is helper  # a stale answer is no failure
    assert (again.total, again.facets, _ids(again)) == (before.total, before.facets, _ids(before))
    assert _page(author, q="payment").total == 7


def test_both_paths_break_ties_the_same_way(embedded, monkeypatch) -> None:  # noqa: ANN001
    author = user("alice", "author", "admin")
    same = [add(author, "identical payment text", title="Same") for _ in range(6)]
    settle()
    when = dt.datetime(2024, 5, 5, tzinfo=UTC)
    for doc in same:
        _dated(doc, when)
    for sort in ("relevance", "newest", "oldest"):
        first = _agree(author, monkeypatch, q="payment", sort=sort, limit=3)
        rest = _agree(author, monkeypatch, q="payment", sort=sort, limit=3, cursor=first.next_cursor)
        assert set(_ids(first) + _ids(rest)) == set(same)


def test_an_unchanged_update_neither_logs_nor_reindexes(corpus) -> None:  # noqa: ANN001
    _, _, ids, _ = corpus
    with transaction(readonly=True) as session:
        head = _head(session.connection().connection.driver_connection)
    with transaction() as session:  # what the indexer does for a metadata-only change: every field set again
        entry = session.execute(select(SearchEntry).where(SearchEntry.document_id == ids[0])).scalar_one()
        session.execute(update(SearchEntry).where(SearchEntry.id == entry.id).values(
            title=entry.title, body=entry.body, document_type_id=entry.document_type_id, year=entry.year,
            restricted=entry.restricted, customer_id=entry.customer_id, created_at=entry.created_at))
    with transaction(readonly=True) as session:
        assert _head(session.connection().connection.driver_connection) == head
    with transaction() as session:
        session.execute(update(SearchEntry).where(SearchEntry.id == entry.id).values(title="Renamed"))
    with transaction(readonly=True) as session:
        assert _head(session.connection().connection.driver_connection) == head + 1


def test_deep_nesting_is_a_syntax_error_not_a_crash(corpus) -> None:  # noqa: ANN001
    author = corpus[0]
    assert _page(author, q="(" * 10 + "payment" + ")" * 10).total == 8
    with pytest.raises(QuerySyntaxError) as err:
        _page(author, q="(" * 11 + "payment" + ")" * 11)
    assert err.value.extra["position"] == 10
