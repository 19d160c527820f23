"""Issue 5: the disposition sweep over 1,000,000 documents' metadata (synthetic rows) on SQLite and PostgreSQL,
against a naive per-document Python evaluation in the same run.

Rows are bulk-inserted (executemany on SQLite, COPY on PostgreSQL), not made through the service layer: documents
created over 13 years in three classes (6 years from the end of the calendar year, destroy; 2 years, review; 5
years from the end of the fiscal year after an account_closed event, transfer; 40% of those clocks not started),
2% under an active legal hold, 1% under a released one, 1% in review and 1% destroyed. Then, timed:

- a dry run (counts everything due by class and action);
- `propose` at the configured batch size (POSTROOM_RECORDS_BATCH_MAX_ITEMS, 10,000), committed;
- `propose` of everything else that is due in one batch (max_items = the number of documents), committed.

Baseline: load each records row, compute its due date with `records.retention.due_date` from its class's rule,
check holds with a query per due document, and write its batch item and new disposition through the ORM, over a
sample of POSTROOM_BENCH_SWEEP_SAMPLE rows (default 20,000), rolled back; its time is extrapolated linearly to all
rows and printed as such. The baseline's choices on the sample must equal the sweep's.

Target: every sweep under 60 s. POSTROOM_BENCH_SWEEP_DOCS sets the number of documents (default 1,000,000).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from records.models import DispositionBatch, DispositionItem, RecordInfo, RetentionClass
from records.retention import Rule, due_date
from records.service.common import is_held
from records.service.disposition import propose
from records.service.disposition.sweep import _candidates
from records.service.fileplan import create_class, rule_of
from repository import identity
from repository.config import get_settings
from repository.db import get_engine, session_factory, transaction
from repository.models import DocumentType

N = int(os.environ.get("POSTROOM_BENCH_SWEEP_DOCS", "1000000"))
SAMPLE = min(N, int(os.environ.get("POSTROOM_BENCH_SWEEP_SAMPLE", "20000")))
TARGET = 60.0
CHUNK = 50_000
AS_OF = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
FIRST = dt.datetime(2014, 1, 1, tzinfo=dt.UTC)
SPAN = int((AS_OF - FIRST).total_seconds())
FISCAL = (4, 1)
# code, trigger, event type, period, unit, cutoff, action; documents go to them in the ratio 2 : 1 : 1
CLASSES = [
    ("BENCH-CORR-6Y", "created", None, 6, "years", "calendar_year", "destroy"),
    ("BENCH-NOTE-2Y", "created", None, 2, "years", None, "review"),
    ("BENCH-ACCT-5Y", "event", "account_closed", 5, "years", "fiscal_year", "transfer"),
]
WHICH = (0, 0, 1, 2)
DOCUMENTS = ("id", "title", "document_type_id", "metadata", "state", "current_major", "current_minor", "revision",
             "created_by", "created_at", "updated_at", "restricted")
RECORDS = ("document_id", "class_id", "classified_at", "trigger_at", "due_at", "disposition", "updated_at")
HOLD_ITEMS = ("hold_id", "document_id", "source", "added_by", "added_at", "versions", "released_at")
HOLDS = ("id", "name", "reason", "state", "created_by", "created_at", "released_by", "released_at",
         "release_reason")


@dataclass
class Loaded:
    """What the synthetic load holds: how many documents are due and free, and how long loading took."""

    due_free: int = 0
    held: int = 0
    seconds: float = 0.0


def _sqlite_value(value: object) -> object:
    if isinstance(value, dt.datetime):  # as SQLAlchemy's SQLite DateTime stores it (UTC, no zone)
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


def _insert(engine: Engine, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Bulk-insert rows with the driver: executemany on SQLite, COPY on PostgreSQL."""
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        if engine.dialect.name == "sqlite":
            marks = ", ".join("?" * len(columns))
            conn.execute("BEGIN")
            conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                             [tuple(_sqlite_value(v) for v in row) for row in rows])
            conn.execute("COMMIT")
        else:
            with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            conn.commit()
    finally:
        raw.close()


def _setup() -> tuple[str, str, list[str], list[str]]:
    """A records manager, the three classes and two holds (one released); returns (user id, type id, class ids,
    hold ids)."""
    with transaction() as s:
        user = identity.create_user(s, username="bench", password="bench-password", roles=["records_manager"],
                                    actor="bench")
        s.flush()
        type_id = s.execute(select(DocumentType.id).where(DocumentType.name == "general")).scalar_one()
        classes = [create_class(s, actor=user, code=code, title=code, trigger=trigger, event_type=event,
                                period_value=value, period_unit=unit, cutoff=cutoff, action=action).id
                   for code, trigger, event, value, unit, cutoff, action in CLASSES]
        user_id = user.id
    hold_ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    released = AS_OF - dt.timedelta(days=30)
    _insert(get_engine(), "records_holds", HOLDS, [
        (hold_ids[0], "Bench v. Bank", "litigation", "active", "bench", FIRST, None, None, None),
        (hold_ids[1], "Old matter", "settled", "released", "bench", FIRST, "bench", released, "settled")])
    return user_id, type_id, classes, hold_ids


def _rows(rng: random.Random, count: int, user_id: str, type_id: str, classes: list[str],
          holds: list[str], loaded: Loaded) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """One chunk of synthetic documents, their records rows and hold items."""
    rules = [Rule(value, unit, cutoff) for _, _, _, value, unit, cutoff, _ in CLASSES]
    documents, records, items = [], [], []
    released = AS_OF - dt.timedelta(days=30)
    for _ in range(count):
        doc_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        created = FIRST + dt.timedelta(seconds=rng.randrange(SPAN))
        which = WHICH[rng.randrange(4)]
        trigger: dt.datetime | None = created
        if CLASSES[which][1] == "event":
            closed = created + dt.timedelta(days=rng.randrange(3 * 365))
            trigger = closed if rng.random() < 0.6 and closed < AS_OF else None
        due = due_date(trigger, rules[which], FISCAL)
        roll = rng.random()
        disposition = "review" if roll < 0.01 else "destroyed" if roll < 0.02 else "active"
        held = rng.random()
        documents.append((doc_id, f"Bench document {doc_id[:8]}", type_id, "{}",
                          "destroyed" if disposition == "destroyed" else "active", 1, 0, 1, user_id, created, created,
                          False))
        records.append((doc_id, classes[which], created, trigger, due, disposition, created))
        if held < 0.02:
            items.append((holds[0], doc_id, "document", "bench", created, "[]", None))
            loaded.held += 1
        elif held < 0.03:
            items.append((holds[1], doc_id, "document", "bench", created, "[]", released))
        if disposition == "active" and due is not None and due <= AS_OF and held >= 0.02:
            loaded.due_free += 1
    return documents, records, items


def _load(engine: Engine) -> Loaded:
    """Insert N documents' metadata in chunks."""
    loaded = Loaded()
    start = time.perf_counter()
    user_id, type_id, classes, holds = _setup()
    rng = random.Random(5)
    for offset in range(0, N, CHUNK):
        documents, records, items = _rows(rng, min(CHUNK, N - offset), user_id, type_id, classes, holds, loaded)
        _insert(engine, "documents", DOCUMENTS, documents)
        _insert(engine, "records_documents", RECORDS, records)
        if items:
            _insert(engine, "records_hold_items", HOLD_ITEMS, items)
    if engine.dialect.name == "postgresql":  # as autovacuum would after a bulk load; SQLite runs without stats
        with engine.connect() as conn:
            conn.execute(text("ANALYZE documents, records_documents, records_hold_items"))
            conn.commit()
    loaded.seconds = time.perf_counter() - start
    return loaded


def _sample_ids() -> list[str]:
    with transaction(readonly=True) as s:
        return list(s.execute(select(RecordInfo.document_id).order_by(RecordInfo.document_id).limit(SAMPLE))
                    .scalars())


def _naive(sample: list[str]) -> tuple[float, set[str]]:
    """The per-document evaluation over the sample (rolled back): seconds and the documents it would propose."""
    session = session_factory()()
    try:
        start = time.perf_counter()
        batch = DispositionBatch(state="proposed", as_of=AS_OF, proposed_by="naive", proposed_at=AS_OF)
        session.add(batch)
        session.flush()
        chosen: set[str] = set()
        for part in range(0, len(sample), 1000):
            rows = session.execute(select(RecordInfo).where(RecordInfo.document_id.in_(sample[part:part + 1000])))
            for info in rows.scalars():
                if info.disposition != "active" or info.class_id is None:
                    continue
                cls = session.get(RetentionClass, info.class_id)
                due = due_date(info.trigger_at, rule_of(cls), FISCAL)
                if due is None or due > AS_OF or is_held(session, info.document_id):
                    continue
                session.add(DispositionItem(batch_id=batch.id, document_id=info.document_id, class_id=cls.id,
                                            action=cls.action, due_at=due, excluded=False))
                info.disposition = "pending"
                chosen.add(info.document_id)
        session.flush()
        return time.perf_counter() - start, chosen
    finally:
        session.rollback()
        session.close()


def _timed(**kwargs) -> tuple[float, object]:  # noqa: ANN003
    start = time.perf_counter()
    with transaction() as s:
        report = propose(s, actor="bench", as_of=AS_OF, **kwargs)
    return time.perf_counter() - start, report


def _plan(limit: int) -> str:
    """The database's plan for the sweep's candidate query with this LIMIT."""
    query = _candidates(AS_OF, limit, RecordInfo.document_id)
    with transaction(readonly=True) as s:
        dialect = s.get_bind().dialect
        sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        if dialect.name == "sqlite":
            return "; ".join(str(r[-1]) for r in s.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
        return "; ".join(r[0].strip() for r in s.execute(text(f"EXPLAIN {sql}")) if "->" in r[0] or "Limit" in r[0])


def _proposed(batch_ids: list[str], sample: list[str]) -> set[str]:
    chosen: set[str] = set()
    with transaction(readonly=True) as s:
        for part in range(0, len(sample), 1000):
            chosen.update(s.execute(select(DispositionItem.document_id).where(
                DispositionItem.batch_id.in_(batch_ids),
                DispositionItem.document_id.in_(sample[part:part + 1000]))).scalars())
    return chosen


def _report(backend: str, loaded: Loaded, figures: dict[str, tuple[float, int]], naive: float,
            naive_rows: int) -> Iterator[str]:
    naive_all = naive * N / naive_rows
    yield f"\n[{backend}] {N:,} documents loaded in {loaded.seconds:.1f} s; {loaded.due_free:,} due and free, " \
          f"{loaded.held:,} under an active hold"
    for name, (seconds, items) in figures.items():
        yield f"[{backend}] {name}: {seconds:.2f} s, {items:,} documents; target < {TARGET:.0f} s"
    yield f"[{backend}] naive per-document evaluation: {naive:.2f} s for {naive_rows:,} rows, extrapolated " \
          f"linearly to {N:,} rows: {naive_all:.0f} s ({naive_all / 60:.1f} min)"
    sweep_all = figures["sweep, everything else due"][0] + figures["sweep, one batch at the configured size"][0]
    yield f"[{backend}] ratio (naive extrapolated / the two sweeps that proposed everything due): " \
          f"{naive_all / sweep_all:.1f}"


def test_sweep_over_a_million_documents(repo, database) -> None:  # noqa: ANN001
    backend = "postgresql" if database else "sqlite"
    engine = get_engine()
    loaded = _load(engine)
    sample = _sample_ids()
    naive, naive_chosen = _naive(sample)
    with transaction(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(RecordInfo)).scalar_one() == N
    dry_seconds, dry = _timed(dry_run=True, max_items=N)
    assert dry.total == loaded.due_free
    batch_size = get_settings().records_batch_max_items
    plans = {limit: _plan(limit) for limit in (batch_size, N)}
    one_seconds, one = _timed()
    rest_seconds, rest = _timed(max_items=N)
    assert one.total == min(batch_size, loaded.due_free) and one.total + rest.total == loaded.due_free
    assert not rest.more_due
    assert _proposed([one.batch_id, rest.batch_id], sample) == naive_chosen, "the naive baseline disagrees"
    figures = {"dry run (counts by class and action)": (dry_seconds, dry.total),
               "sweep, one batch at the configured size": (one_seconds, one.total),
               "sweep, everything else due": (rest_seconds, rest.total)}
    for line in _report(backend, loaded, figures, naive, len(sample)):
        print(line)
    for limit, plan in plans.items():
        print(f"[{backend}] plan of the candidate query, LIMIT {limit:,}: {plan}")
    slow = {name: seconds for name, (seconds, _) in figures.items() if seconds >= TARGET}
    assert not slow, f"over {TARGET:.0f} s on {backend}: {slow}"
