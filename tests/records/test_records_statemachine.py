"""Records management under random sequences of create, revise, declare, hold, release, business events, rule
changes, time passing, sweeps, approvals, executions and erasure requests, against a Python model (SQLite; a few
examples on PostgreSQL too).

The model knows, per document, its class, clock, due date, disposition, whether it is declared (and its version
hashes then), restricted or destroyed, and which holds cover it. After every step the database must agree, and:
no held document is ever destroyed; a record's content never changes and reads back with its hashes; a
destroyed document's key is shredded, its blobs are gone and search does not find it; the audit chain verifies.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import shutil
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import create_engine, func, select, text

from records import clock
from records import events as records_events
from records.errors import HoldStateError, LegalHoldActiveError, RecordDeclaredError, RecordsError
from records.models import DispositionItem, HoldItem, RecordInfo, RetentionClass, Tombstone
from records.retention import Rule, due_date
from records.service import classification, declaration, erasure, fileplan, holds
from records.service.disposition import approve, execute_approved, propose
from repository import audit, identity, runtime, service, vault
from repository.db import get_engine, transaction
from repository.errors import IntegrityError, InvalidInputError, NotFoundError
from repository.models import Customer, DataKey, Document, DocumentVersion, User
from repository.service.destruction import delete_blobs
from search import service as search
from search.models import SearchEntry
from tests.conftest import PG_URL
from tests.repository.helpers import staged
from tests.search.support import settle
from tests.search.support import start as start_search
from tests.statemachine_support import point_at, restore_env, saved_env, sqlite_template

MAX_DOCS = 8
CUSTOMERS = 2
EVENT_TYPE = "account_closed"
# One searchable word per document (letters only, so every tokenizer keeps it whole).
WORDS = ("aardvark", "bison", "cheetah", "dingo", "emu", "ferret", "gazelle", "heron")
# kind -> (class code, document type it files, trigger, initial period in days)
KINDS = {"short": ("SHORT-10D", "general", "created", 10), "event": ("CLOSED-5D", "correspondence", "event", 5)}
OPEN = ("active", "pending", "review")

pytestmark = pytest.mark.slow


def _populate() -> None:
    """The users, two customers and the two classes every example starts with."""
    with transaction() as s:
        manager = identity.create_user(s, username="rita", password="state-machine-pw",
                                       roles=["records_manager", "admin"], actor="test")
        identity.create_user(s, username="alice", password="state-machine-pw", roles=["author"], actor="test")
        for i in range(CUSTOMERS):
            service.create_customer(s, actor=manager, external_ref=f"C-{i}", name=f"Customer {i}")
        for code, doc_type, trigger, days in KINDS.values():
            cls = fileplan.create_class(s, actor=manager, code=code, title=code, trigger=trigger, period_value=days,
                                        period_unit="days", action="destroy",
                                        event_type=EVENT_TYPE if trigger == "event" else None)
            fileplan.map_document_types(s, actor=manager, class_id=cls.id, document_types=[doc_type])


@lru_cache
def _template() -> Path:
    """A migrated, populated SQLite database, built once and copied for every example."""
    return sqlite_template("postroom-rsm-template-", _populate)


@dataclass
class Doc:
    """The model of one document."""

    id: str
    word: str
    kind: str
    customer: int
    created_at: dt.datetime
    contents: list[bytes]
    trigger_at: dt.datetime | None = None
    due_at: dt.datetime | None = None
    disposition: str = "active"
    declared: list[str] | None = None  # the version hashes at declaration
    restricted: bool = False
    erasure_at: dt.datetime | None = None  # when an erasure request restricted it
    blob_keys: list[str] = field(default_factory=list)

    @property
    def destroyed(self) -> bool:
        return self.disposition == "destroyed"

    @property
    def hashes(self) -> list[str]:
        return [hashlib.sha256(c).hexdigest() for c in self.contents]


@dataclass
class Batch:
    """The model of a disposition batch: its state and items (document id -> excluded)."""

    id: str
    state: str
    items: dict[str, bool]


class RecordsMachine(RuleBasedStateMachine):
    """A records manager and an author, two customers, a created-triggered and an event-triggered class."""

    def __init__(self) -> None:
        super().__init__()
        self._saved_env = saved_env()
        self.root = Path(tempfile.mkdtemp(prefix="postroom-rsm-"))
        point_at(self.root)
        (self.root / "data").mkdir()
        self._database()
        clock.reset()
        records_events.register()
        start_search()
        with transaction() as s:
            users = {u.username: u for u in s.execute(select(User)).scalars()}
            s.expunge_all()
            self.customers = list(s.execute(select(Customer.id).order_by(Customer.external_ref)).scalars())
            self.class_ids = {kind: s.execute(select(RetentionClass.id).where(RetentionClass.code == code))
                              .scalar_one() for kind, (code, *_) in KINDS.items()}
        self.manager, self.author = users["rita"], users["alice"]
        self.periods = {kind: days for kind, (*_, days) in KINDS.items()}
        self.docs: list[Doc] = []
        self.holds: dict[str, tuple[bool, set[str]]] = {}  # hold id -> (active, document ids)
        self.batches: list[Batch] = []
        self.last_event: dict[int, dt.datetime] = {}
        self.erasures = 0

    def _database(self) -> None:
        """This example's database: a copy of the SQLite template."""
        shutil.copyfile(_template(), self.root / "data" / "postroom.db")

    def teardown(self) -> None:
        clock.reset()
        get_engine().dispose()
        self._drop_database()
        restore_env(self._saved_env)
        shutil.rmtree(self.root, ignore_errors=True)

    def _drop_database(self) -> None:
        """Nothing to drop: the SQLite file goes with the example's directory."""

    # --- model helpers -------------------------------------------------------------------------------------------

    def _held(self, doc: Doc) -> bool:
        return any(active and doc.id in ids for active, ids in self.holds.values())

    def _due(self, kind: str, trigger: dt.datetime | None) -> dt.datetime | None:
        return due_date(trigger, Rule(self.periods[kind], "days"))

    def _due_of(self, doc: Doc, trigger: dt.datetime | None) -> dt.datetime | None:
        """The rule's due date; a document an erasure request kept only for a hold stays due from the request."""
        due = self._due(doc.kind, trigger)
        if doc.erasure_at is None or doc.declared is not None:
            return due
        return doc.erasure_at if due is None else min(due, doc.erasure_at)

    def _live(self) -> list[Doc]:
        return [d for d in self.docs if not d.destroyed]

    def _destroyed(self, doc: Doc) -> None:
        assert not self._held(doc), f"the model destroys held document {doc.word}"
        doc.disposition = "destroyed"

    # --- rules: documents ----------------------------------------------------------------------------------------

    @initialize(first=st.lists(st.tuples(st.sampled_from(sorted(KINDS)), st.integers(0, CUSTOMERS - 1)),
                               min_size=2, max_size=4))
    def first_documents(self, first: list[tuple[str, int]]) -> None:
        for kind, customer in first:
            self.create(kind, customer)

    @precondition(lambda self: len(self.docs) < MAX_DOCS)
    @rule(kind=st.sampled_from(sorted(KINDS)), customer=st.integers(0, CUSTOMERS - 1))
    def create(self, kind: str, customer: int) -> None:
        word = WORDS[len(self.docs)]
        data = f"A letter about the {word}, first draft.".encode()
        with transaction() as s:
            document = service.create_document(s, actor=self.author, title=f"Note {len(self.docs)}",
                                               document_type=KINDS[kind][1], content=staged(data),
                                               customer_id=self.customers[customer])
            doc = Doc(document.id, word, kind, customer, document.created_at, [data])
        settle()  # the outbox classifies it
        doc.trigger_at = doc.created_at if kind == "short" else self.last_event.get(customer)
        doc.due_at = self._due(kind, doc.trigger_at)
        self.docs.append(doc)

    @precondition(lambda self: self.docs)
    @rule(data=st.data())
    def revise(self, data: st.DataObject) -> None:
        # Records first: the attempts that must fail are the point (and the simplest draw picks them).
        doc = data.draw(st.sampled_from(sorted(self.docs, key=lambda d: d.declared is None)))
        content = f"A letter about the {doc.word}, draft {len(doc.contents) + 1}.".encode()
        if doc.destroyed:
            with pytest.raises(NotFoundError), transaction() as s:
                service.checkout(s, actor=self.manager, document_id=doc.id)
            return
        if doc.declared is not None:
            with pytest.raises(RecordDeclaredError), transaction() as s:
                service.checkout(s, actor=self.manager, document_id=doc.id)
            return
        with transaction() as s:
            service.checkout(s, actor=self.manager, document_id=doc.id)
        with transaction() as s:
            service.checkin(s, actor=self.manager, document_id=doc.id, content=staged(content))
        doc.contents.append(content)

    @precondition(lambda self: self.docs)
    @rule(data=st.data())
    def declare(self, data: st.DataObject) -> None:
        doc = data.draw(st.sampled_from(self.docs))
        if doc.destroyed:
            expected: type[Exception] | None = NotFoundError
        elif doc.declared is not None:
            expected = RecordDeclaredError
        elif doc.disposition not in ("active", "review"):
            expected = RecordsError  # pending in a disposition batch
        else:
            expected = None
        if expected is not None:
            with pytest.raises(expected), transaction() as s:
                declaration.declare(s, actor=self.manager, document_id=doc.id)
            return
        with transaction() as s:
            declaration.declare(s, actor=self.manager, document_id=doc.id)
        doc.declared = doc.hashes

    @precondition(lambda self: any(d.declared is not None or self._held(d) for d in self.docs if not d.destroyed))
    @rule(data=st.data())
    def try_to_delete(self, data: st.DataObject) -> None:
        doc = data.draw(st.sampled_from([d for d in self._live() if d.declared is not None or self._held(d)]))
        expected = RecordDeclaredError if doc.declared is not None else LegalHoldActiveError
        with pytest.raises(expected), transaction() as s:
            service.trash_document(s, actor=self.manager, document_id=doc.id)

    # --- rules: holds --------------------------------------------------------------------------------------------

    @precondition(lambda self: self.docs)
    @rule(data=st.data())
    def place_hold(self, data: st.DataObject) -> None:
        chosen = data.draw(st.lists(st.sampled_from(self.docs), min_size=1, max_size=3, unique_by=lambda d: d.id))
        ids = [d.id for d in chosen]
        if any(d.destroyed for d in chosen):  # all or nothing: no hold, no item
            with pytest.raises(InvalidInputError), transaction() as s:
                hold = holds.create_hold(s, actor=self.manager, name="Smith v. Bank", reason="litigation")
                holds.add_items(s, actor=self.manager, hold_id=hold.id, document_ids=ids)
            return
        with transaction() as s:
            hold = holds.create_hold(s, actor=self.manager, name="Smith v. Bank", reason="litigation")
            holds.add_items(s, actor=self.manager, hold_id=hold.id, document_ids=ids)
            self.holds[hold.id] = (True, set(ids))

    @precondition(lambda self: any(d.disposition == "pending" for d in self.docs))
    @rule(data=st.data(), carry_on=st.booleans())
    def hold_a_pending_document(self, data: st.DataObject, carry_on: bool) -> None:
        """Litigation starts after the sweep proposed a document: the execution must leave it alone (and, maybe,
        the batches are approved and carried out at once)."""
        doc = data.draw(st.sampled_from([d for d in self.docs if d.disposition == "pending"]))
        with transaction() as s:
            hold = holds.create_hold(s, actor=self.manager, name="Late claim", reason="litigation")
            holds.add_items(s, actor=self.manager, hold_id=hold.id, document_ids=[doc.id])
            self.holds[hold.id] = (True, {doc.id})
        if carry_on:
            for batch in [b for b in self.batches if b.state == "proposed"]:
                self._approve(batch, exclude=False)
            self._execute()

    @precondition(lambda self: self.holds and self.docs)
    @rule(data=st.data())
    def add_to_hold(self, data: st.DataObject) -> None:
        hold_id = data.draw(st.sampled_from(list(self.holds)))  # in the order placed: ids are random
        doc = data.draw(st.sampled_from(self.docs))
        active, ids = self.holds[hold_id]
        expected = HoldStateError if not active else InvalidInputError if doc.destroyed else None
        with pytest.raises(expected) if expected else nullcontext(), transaction() as s:
            holds.add_items(s, actor=self.manager, hold_id=hold_id, document_ids=[doc.id])
        if expected is None:
            ids.add(doc.id)

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def release_hold(self, data: st.DataObject) -> None:
        hold_id = data.draw(st.sampled_from(list(self.holds)))  # in the order placed: ids are random
        active, ids = self.holds[hold_id]
        with pytest.raises(HoldStateError) if not active else nullcontext(), transaction() as s:
            holds.release_hold(s, actor=self.manager, hold_id=hold_id, reason="matter settled")
        self.holds[hold_id] = (False, ids)

    # --- rules: retention ----------------------------------------------------------------------------------------

    @rule(customer=st.integers(0, CUSTOMERS - 1))
    def business_event(self, customer: int) -> None:
        with transaction() as s:
            event, _ = classification.record_business_event(s, actor=self.manager, type=EVENT_TYPE,
                                                            customer_id=self.customers[customer],
                                                            occurred_at=clock.now())
            occurred = event.occurred_at
        self.last_event[customer] = occurred
        for doc in self.docs:
            if (doc.kind == "event" and doc.customer == customer and doc.disposition in OPEN
                    and (doc.trigger_at is None or doc.trigger_at < occurred)):
                doc.trigger_at, doc.due_at = occurred, self._due_of(doc, occurred)

    @rule(kind=st.sampled_from(sorted(KINDS)), days=st.sampled_from([2, 5, 10, 30]))
    def change_rule(self, kind: str, days: int) -> None:
        with transaction() as s:
            fileplan.update_class(s, actor=self.manager, class_id=self.class_ids[kind], reason="new regulation",
                                  period_value=days)
        if days == self.periods[kind]:
            event("rule change: the same period, nothing recomputed")
            return
        self.periods[kind] = days
        for doc in self.docs:
            if doc.kind == kind and doc.disposition in OPEN:
                doc.due_at = self._due_of(doc, doc.trigger_at)

    @rule(days=st.sampled_from([1, 4, 12, 40]))
    def time_passes(self, days: int) -> None:
        clock.advance(dt.timedelta(days=days))

    # --- rules: disposition and erasure ---------------------------------------------------------------------------

    @rule(days=st.sampled_from([0, 7, 30]), then=st.sampled_from(["propose", "approve", "execute"]))
    def sweep(self, days: int, then: str) -> None:
        """Some days later, propose a batch of what is due; then maybe approve it and carry it out at once."""
        clock.advance(dt.timedelta(days=days))
        now = clock.now()
        expected = {d.id for d in self.docs if d.disposition == "active" and d.due_at is not None
                    and d.due_at <= now and not self._held(d)}
        with transaction() as s:
            report = propose(s, actor="system:records-sweep")
        if not expected:
            assert report.batch_id is None
            return
        assert report.batch_id is not None and report.total == len(expected)
        with transaction(readonly=True) as s:
            items = set(s.execute(select(DispositionItem.document_id)
                                  .where(DispositionItem.batch_id == report.batch_id)).scalars())
        assert items == expected
        for doc in self.docs:
            if doc.id in expected:
                doc.disposition = "pending"
        batch = Batch(report.batch_id, "proposed", dict.fromkeys(expected, False))
        self.batches.append(batch)
        if then != "propose":
            self._approve(batch, exclude=False)
        if then == "execute":
            self._execute()

    @precondition(lambda self: any(b.state == "proposed" for b in self.batches))
    @rule(data=st.data(), exclude=st.booleans())
    def approve_batch(self, data: st.DataObject, exclude: bool) -> None:
        self._approve(data.draw(st.sampled_from([b for b in self.batches if b.state == "proposed"])), exclude)

    def _approve(self, batch: Batch, exclude: bool) -> None:
        excluded = [next(d.id for d in self.docs if d.id in batch.items)] if exclude else []  # not by random id
        with transaction() as s:
            approve(s, actor=self.manager, batch_id=batch.id,
                    exclude=[{"document_id": d, "reason": "still needed"} for d in excluded])
        for doc in self.docs:
            if doc.id in excluded:
                batch.items[doc.id] = True
                if doc.disposition == "pending":
                    doc.disposition = "review"
        batch.state = "approved"

    @precondition(lambda self: any(b.state == "approved" for b in self.batches))
    @rule()
    def execute(self) -> None:
        self._execute()

    def _execute(self) -> None:
        now = clock.now()
        by_id = {d.id: d for d in self.docs}
        approved = [b for b in self.batches if b.state == "approved"]
        for batch in approved:
            for doc_id in sorted(d for d, excluded in batch.items.items() if not excluded):
                doc = by_id[doc_id]
                if doc.disposition != "pending":
                    event("execute: skipped, no longer pending")
                    continue  # destroyed by an erasure meanwhile
                if self._held(doc) or doc.due_at is None or doc.due_at > now:
                    event("execute: skipped, " + ("held" if self._held(doc) else "no longer due"))
                    doc.disposition = "active"  # the next sweep decides again
                else:
                    event("execute: destroyed" + (" a record" if doc.declared is not None else ""))
                    self._destroyed(doc)
            batch.state = "completed"
        assert execute_approved(get_engine()) == len(approved)

    @precondition(lambda self: len(self.docs) >= 4 and not self.erasures)  # one request: it erases a lot
    @rule(customer=st.integers(0, CUSTOMERS - 1))
    def erasure_request(self, customer: int) -> None:
        self.erasures += 1
        before = clock.now()
        with transaction() as s:
            result = erasure.request_erasure(s, actor=self.manager, customer_id=self.customers[customer])
            erased = {e["document_id"] for e in result.request.report["erased"]}
            kept = {e["document_id"]: e["reason"] for e in result.request.report["kept"]}
            requested_at = result.request.requested_at
        delete_blobs(result.blob_keys)
        after = clock.now()
        want_erased, want_kept = set(), {}
        for doc in self.docs:
            if doc.customer != customer or doc.destroyed:
                continue
            running = doc.due_at > before if doc.due_at is not None else doc.trigger_at is None
            reason = "retention" if running and doc.declared is not None else None
            if self._held(doc):
                if reason is None:  # only the hold keeps it: due now, proposed once the hold is released
                    due = _info(doc.id).due_at
                    assert before <= due <= after
                    doc.due_at = due
                event("erasure: kept, held")
                want_kept[doc.id] = "legal_hold"
                doc.restricted = True
                doc.erasure_at = requested_at
            elif reason is None:
                event("erasure: destroyed")
                want_erased.add(doc.id)
                self._destroyed(doc)
            else:
                event("erasure: kept, a record")
                want_kept[doc.id] = reason
                doc.restricted = True
                doc.erasure_at = requested_at
        assert (erased, kept) == (want_erased, want_kept)

    # --- invariants ----------------------------------------------------------------------------------------------

    @invariant()
    def database_matches_model(self) -> None:
        with transaction(readonly=True) as s:
            for doc in self.docs:
                document, info = s.get(Document, doc.id), s.get(RecordInfo, doc.id)
                held = bool(s.execute(select(HoldItem.hold_id).where(
                    HoldItem.document_id == doc.id, HoldItem.released_at.is_(None))).first())
                got = (document.state == "destroyed", info.disposition, info.trigger_at, info.due_at,
                       info.declared_at is not None, document.restricted, held)
                want = (doc.destroyed, doc.disposition, doc.trigger_at, doc.due_at, doc.declared is not None,
                        doc.restricted, self._held(doc))
                assert got == want, f"{doc.word}: database {got} != model {want}"

    @invariant()
    def no_held_document_is_destroyed(self) -> None:
        with transaction(readonly=True) as s:
            held_and_destroyed = s.execute(
                select(func.count()).select_from(Document).join(HoldItem, HoldItem.document_id == Document.id)
                .where(Document.state == "destroyed", HoldItem.released_at.is_(None))).scalar_one()
            tombstones = set(s.execute(select(Tombstone.document_id)).scalars())
        assert held_and_destroyed == 0
        assert tombstones == {d.id for d in self.docs if d.destroyed}

    @invariant()
    def content_never_changes_and_reads_back(self) -> None:
        with transaction(readonly=True) as s:
            for doc in self._live():
                versions = list(s.execute(select(DocumentVersion).where(DocumentVersion.document_id == doc.id)
                                          .order_by(DocumentVersion.major, DocumentVersion.minor)).scalars())
                hashes = [v.sha256 for v in versions]
                if doc.declared is not None:
                    assert hashes == doc.declared, f"record {doc.word} changed"
                assert hashes == doc.hashes
                for version, content in zip(versions, doc.contents, strict=True):
                    read = b"".join(service.read_version(s, version=version))
                    assert read == content and hashlib.sha256(read).hexdigest() == version.sha256
                doc.blob_keys = sorted({v.blob_key for v in versions})

    @invariant()
    def destroyed_content_is_unreadable_and_gone(self) -> None:
        store = runtime.get_runtime().store
        with transaction(readonly=True) as s:
            for doc in self.docs:
                if not doc.destroyed:
                    continue
                assert s.get(DataKey, doc.id).wrapped_key is None
                for version in s.execute(select(DocumentVersion).where(DocumentVersion.document_id == doc.id)):
                    with pytest.raises(IntegrityError):
                        b"".join(vault.read_content(s, runtime=runtime.get_runtime(), version=version[0]))
                assert doc.blob_keys and not any(store.exists(k) for k in doc.blob_keys)

    @invariant()
    def search_finds_exactly_what_is_left(self) -> None:
        if not self.docs:
            return
        settle()
        with transaction(readonly=True) as s:
            hits = search.search(s, actor=self.manager, q=" OR ".join(d.word for d in self.docs), limit=100,
                                 facets=False).hits
            found = {h.document_id for h in hits}
            indexed = set(s.execute(select(SearchEntry.document_id)).scalars())
        assert found == {d.id for d in self._live()}, "search does not find exactly the documents not destroyed"
        assert not indexed & {d.id for d in self.docs if d.destroyed}

    @invariant()
    def audit_chain_verifies(self) -> None:
        with transaction(readonly=True) as s:
            report = audit.verify(s)
        assert report.ok, report


def _info(document_id: str) -> RecordInfo:
    with transaction(readonly=True) as s:
        row = s.get(RecordInfo, document_id)
        s.expunge(row)
        return row


class PostgresRecordsMachine(RecordsMachine):
    """The same machine on a fresh PostgreSQL database per example, cloned from the migrated test template."""

    template = ""

    def _database(self) -> None:
        self.database = f"postroom_rsm_{secrets.token_hex(6)}"
        _admin(f'CREATE DATABASE "{self.database}" TEMPLATE "{self.template}"')
        os.environ["POSTROOM_DATABASE_URL"] = PG_URL.rsplit("/", 1)[0] + f"/{self.database}"
        runtime.reset()
        _populate()

    def _drop_database(self) -> None:
        _admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


def _admin(statement: str) -> None:
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


TestRecordsStateMachine = RecordsMachine.TestCase
TestRecordsStateMachine.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)


@pytest.mark.postgres
def test_records_state_machine_on_postgresql(pg_template: str) -> None:
    """Fewer examples on PostgreSQL: the same rules, its own SQL (advisory lock, SKIP LOCKED, full text)."""
    PostgresRecordsMachine.template = pg_template
    run_state_machine_as_test(PostgresRecordsMachine,
                              settings=settings(max_examples=6, stateful_step_count=30, deadline=None))
