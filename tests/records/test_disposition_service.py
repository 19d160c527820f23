"""Disposition through the service: the sweep proposes due, unheld documents; a records manager approves (with
exclusions) or rejects; the executor destroys, transfers or reviews each document after checking it again, files
a declared certificate of destruction, and resumes a batch whose runner crashed (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from records import clock
from records import events as names
from records.errors import DispositionStateError
from records.models import DispositionBatch, DispositionItem, RecordInfo, Tombstone
from records.service import classification, holds
from records.service.disposition import approve, exclude_items, execute, get_batch, list_items, propose, reject
from records.service.disposition.sweep import _candidates
from repository import audit, vault
from repository.db import get_engine, transaction
from repository.errors import IntegrityError, InvalidInputError, NotFoundError, PermissionDeniedError
from repository.models import AuditEntry, DataKey, DocumentType, DocumentVersion, OutboxEvent, User
from repository.runtime import get_runtime
from repository.service import documents
from tests.records.support import make_class, make_document, start, user

YEAR_AND_A_BIT = dt.timedelta(days=400)


@dataclass
class World:
    manager: User
    author: User
    transfer_class: str
    review_class: str


@pytest.fixture
def world(repo) -> World:  # noqa: ANN001
    """Records managers and authors; "general" documents are destroyed a year after creation; two more classes
    transfer or review them instead."""
    start()
    manager, author = user("rita", "records_manager"), user("alice", "author")
    make_class(manager, "GEN-1Y", ["general"])
    world = World(manager, author, make_class(manager, "ARCH-1Y", action="transfer"),
                  make_class(manager, "REV-1Y", action="review"))
    yield world
    clock.reset()


def _reclassify(w: World, document_id: str, class_id: str) -> None:
    with transaction() as s:
        classification.reclassify(s, actor=w.manager, document_id=document_id, class_ref=class_id,
                                  reason="belongs there")


def _hold(w: World, document_id: str) -> str:
    with transaction() as s:
        hold_id = holds.create_hold(s, actor=w.manager, name="Smith v. Bank", reason="litigation").id
        holds.add_items(s, actor=w.manager, hold_id=hold_id, document_ids=[document_id])
    return hold_id


def _propose(**kwargs) -> str | None:  # noqa: ANN003
    with transaction() as s:
        return propose(s, actor="system:records-sweep", **kwargs).batch_id


def _items(batch_id: str) -> dict[str, DispositionItem]:
    with transaction(readonly=True) as s:
        rows = list(s.execute(select(DispositionItem).where(DispositionItem.batch_id == batch_id)).scalars())
        s.expunge_all()
    return {r.document_id: r for r in rows}


def _batch(batch_id: str) -> DispositionBatch:
    with transaction(readonly=True) as s:
        batch = s.get(DispositionBatch, batch_id)
        s.expunge(batch)
    return batch


def _disposition(document_id: str) -> str:
    with transaction(readonly=True) as s:
        return s.get(RecordInfo, document_id).disposition


def _content(document_id: str) -> list[tuple[str, bytes, str]]:
    with transaction(readonly=True) as s:
        versions = s.execute(select(DocumentVersion).where(DocumentVersion.document_id == document_id)
                             .order_by(DocumentVersion.major, DocumentVersion.minor)).scalars().all()
        return [(v.blob_key, b"".join(documents.read_version(s, version=v)), v.sha256) for v in versions]


def _audit_ok() -> None:
    with transaction(readonly=True) as s:
        report = audit.verify(s)
    assert report.ok, report


def test_the_sweep_proposes_due_unheld_documents_once(world: World) -> None:
    w = world
    due, held, other = (make_document(w.author, data=f"doc {i}".encode()) for i in range(3))
    _hold(w, held)
    clock.advance(YEAR_AND_A_BIT)
    with transaction() as s:
        report = propose(s, actor="system:records-sweep")
    assert report.total == 2 and report.batch_id
    assert report.counts == [{"class_id": report.counts[0]["class_id"], "class_code": "GEN-1Y", "action": "destroy",
                              "count": 2}]
    items = _items(report.batch_id)
    assert set(items) == {due, other} and all(i.action == "destroy" for i in items.values())
    assert _disposition(due) == "pending" and _disposition(held) == "active"
    assert _batch(report.batch_id).item_count == 2
    assert _propose() is None  # pending documents are not proposed again; nothing else is due
    with transaction(readonly=True) as s:
        proposed = s.execute(select(AuditEntry).where(AuditEntry.action == names.DISPOSITION_PROPOSED)).scalars().all()
        assert [a.object_id for a in proposed] == [report.batch_id]
        assert s.execute(select(func.count()).select_from(OutboxEvent)
                         .where(OutboxEvent.name == names.DISPOSITION_PROPOSED)).scalar_one() == 1


def test_a_dry_run_counts_by_class_and_action_and_writes_nothing(world: World) -> None:
    w = world
    for _ in range(2):
        make_document(w.author)
    archived = make_document(w.author)
    _reclassify(w, archived, w.transfer_class)
    clock.advance(YEAR_AND_A_BIT)
    with transaction(readonly=True) as s:
        audit_rows = s.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
    with transaction() as s:
        report = propose(s, actor="test", dry_run=True)
    assert report.batch_id is None and report.total == 3
    assert [(c["class_code"], c["action"], c["count"]) for c in report.counts] == [
        ("ARCH-1Y", "transfer", 1), ("GEN-1Y", "destroy", 2)]
    with transaction(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(DispositionBatch)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(AuditEntry)).scalar_one() == audit_rows
        assert set(s.execute(select(RecordInfo.disposition)).scalars()) == {"active"}


def test_nothing_due_makes_no_batch_and_a_full_batch_leaves_the_rest_for_the_next(world: World) -> None:
    w = world
    docs = [make_document(w.author, data=f"doc {i}".encode()) for i in range(3)]
    assert _propose() is None
    clock.advance(YEAR_AND_A_BIT)
    with transaction() as s:
        first = propose(s, actor="test", max_items=2)
    assert first.total == 2 and first.more_due
    with transaction() as s:
        second = propose(s, actor="test", max_items=2)
    assert second.total == 1 and not second.more_due
    assert set(_items(first.batch_id)) | set(_items(second.batch_id)) == set(docs)
    with transaction() as s, pytest.raises(InvalidInputError):
        propose(s, actor="test", as_of=dt.datetime(2030, 1, 1))  # no time zone


def test_the_sweep_reads_the_due_index(world: World) -> None:
    query = _candidates(clock.now(), 10_000, RecordInfo.document_id)
    with transaction(readonly=True) as s:
        dialect = s.get_bind().dialect
        sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        if dialect.name == "sqlite":
            plan = " ".join(str(r[-1]) for r in s.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
        else:
            s.execute(text("SET LOCAL enable_seqscan = off"))
            plan = " ".join(r[0] for r in s.execute(text(f"EXPLAIN {sql}")))
    assert "ix_records_documents_due" in plan, plan


@pytest.fixture
def executed(world: World):  # noqa: ANN201
    """A batch of five kinds of documents, approved with one excluded, then executed."""
    w = world
    kept, excluded, held, archived, reviewed = (make_document(w.author, data=f"content {i}".encode())
                                                for i in range(5))
    _reclassify(w, archived, w.transfer_class)
    _reclassify(w, reviewed, w.review_class)
    _hold(w, held)
    before = {d: _content(d) for d in (kept, archived)}
    clock.advance(YEAR_AND_A_BIT)
    batch_id = _propose()
    assert set(_items(batch_id)) == {kept, excluded, archived, reviewed}
    with transaction() as s:
        approve(s, actor=w.manager, batch_id=batch_id,
                exclude=[{"document_id": excluded, "reason": "still needed for the audit"}])
    assert execute.execute_approved(get_engine(), chunk=2) == 1
    return w, batch_id, {"destroyed": kept, "excluded": excluded, "held": held, "transferred": archived,
                         "reviewed": reviewed}, before


def test_a_destroyed_document_is_unreadable_gone_from_the_store_and_leaves_a_tombstone(executed) -> None:  # noqa: ANN001
    w, batch_id, docs, before = executed
    gone = docs["destroyed"]
    store = get_runtime().store
    [(blob_key, _, sha256)] = before[gone]
    assert not store.exists(blob_key)
    with transaction(readonly=True) as s:
        assert s.get(DataKey, gone).wrapped_key is None
        with pytest.raises(NotFoundError):
            documents.get_document(s, actor=w.manager, document_id=gone)
        version = s.execute(select(DocumentVersion).where(DocumentVersion.document_id == gone)).scalar_one()
        with pytest.raises(IntegrityError, match="destroyed"):  # the key is shredded: no way to decrypt
            b"".join(vault.read_content(s, runtime=get_runtime(), version=version))
        tombstone = s.get(Tombstone, gone)
        assert tombstone.batch_id == batch_id and tombstone.action == "destroy"
        assert tombstone.class_code == "GEN-1Y" and tombstone.approved_by == "rita"
        assert [v["sha256"] for v in tombstone.versions] == [sha256]
        assert s.get(RecordInfo, gone).disposition == "destroyed"
    item = _items(batch_id)[gone]
    assert item.outcome == "destroyed" and item.outcome_at is not None
    _audit_ok()


def test_excluded_reviewed_and_held_documents_stay(executed) -> None:  # noqa: ANN001
    w, batch_id, docs, _ = executed
    items = _items(batch_id)
    assert items[docs["excluded"]].excluded and items[docs["excluded"]].outcome is None
    assert items[docs["excluded"]].exclude_reason == "still needed for the audit"
    assert items[docs["reviewed"]].outcome == "review"
    assert docs["held"] not in items
    assert _disposition(docs["excluded"]) == "review" and _disposition(docs["reviewed"]) == "review"
    assert _disposition(docs["held"]) == "active"
    for key in ("excluded", "reviewed", "held"):
        assert _content(docs[key])[0][1].startswith(b"content")
    with transaction(readonly=True) as s:
        reviews = s.execute(select(AuditEntry).where(AuditEntry.action == names.RECORD_REVIEW_DUE)).scalars().all()
        assert [a.object_id for a in reviews] == [docs["reviewed"]]
    # A review decision makes the document active again, so a later sweep proposes it.
    with transaction() as s:
        classification.extend(s, actor=w.manager, document_id=docs["reviewed"],
                              until=clock.now() + dt.timedelta(days=30), reason="complaint open")
    assert _disposition(docs["reviewed"]) == "active"
    clock.advance(dt.timedelta(days=31))
    assert docs["reviewed"] in _items(_propose())


def test_a_transfer_writes_a_verifiable_package_before_destroying(executed) -> None:  # noqa: ANN001
    w, batch_id, docs, before = executed
    moved = docs["transferred"]
    with transaction(readonly=True) as s:
        tombstone = s.get(Tombstone, moved)
        assert tombstone.action == "transfer" and s.get(RecordInfo, moved).disposition == "transferred"
        package = Path(tombstone.transfer_package)
        with pytest.raises(NotFoundError):
            documents.get_document(s, actor=w.manager, document_id=moved)
    assert package.name == f"{batch_id}.zip" and package.is_file()
    assert not list(package.parent.glob("*.part"))
    with zipfile.ZipFile(package) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["documents"] == [moved]
        for name, digest in manifest["files"].items():
            assert hashlib.sha256(zf.read(name)).hexdigest() == digest, name
        [(_, original, sha256)] = before[moved]
        assert zf.read(f"documents/{moved}/v1.0/file.txt") == original
        metadata = json.loads(zf.read(f"documents/{moved}/metadata.json"))
        assert metadata["versions"][0]["sha256"] == sha256 and metadata["record"]["class"] == "ARCH-1Y"
        trail = json.loads(zf.read(f"documents/{moved}/audit.json"))
        assert {"document.created", names.RECORD_RECLASSIFIED} <= {a["action"] for a in trail}
    _audit_ok()


def test_the_certificate_is_a_declared_record_listing_every_item(executed) -> None:  # noqa: ANN001
    w, batch_id, docs, before = executed
    batch = _batch(batch_id)
    assert batch.state == "completed" and batch.certificate_id and batch.completed_at
    assert "lease" not in batch.summary
    assert batch.summary["outcomes"] == {"destroyed": 1, "transferred": 1, "review": 1}
    with transaction(readonly=True) as s:
        certificate = documents.get_document(s, actor=w.manager, document_id=batch.certificate_id)
        assert s.get(DocumentType, certificate.document_type_id).name == "certificate"
        assert s.get(RecordInfo, certificate.id).declared_at is not None
        version = s.execute(select(DocumentVersion).where(DocumentVersion.document_id == certificate.id)).scalar_one()
        body = json.loads(b"".join(documents.read_version(s, version=version)))
        assert s.execute(select(func.count()).select_from(OutboxEvent)
                         .where(OutboxEvent.name == names.DISPOSITION_COMPLETED)).scalar_one() == 1
    assert body["batch_id"] == batch_id and body["approved_by"] == "rita"
    disposed = {d["document_id"]: d for d in body["disposed"]}
    assert set(disposed) == {docs["destroyed"], docs["transferred"]}
    assert disposed[docs["destroyed"]]["versions"][0]["sha256"] == before[docs["destroyed"]][0][2]
    assert disposed[docs["destroyed"]]["rule"]["period_value"] == 1 and disposed[docs["destroyed"]]["due_at"]
    assert disposed[docs["transferred"]]["action"] == "transfer"
    assert body["excluded"] == [{"document_id": docs["excluded"], "class_code": "GEN-1Y", "action": "destroy",
                                 "due_at": body["excluded"][0]["due_at"], "reason": "still needed for the audit",
                                 "excluded_by": "rita"}]
    assert [r["document_id"] for r in body["reviewed"]] == [docs["reviewed"]]
    assert body["skipped"] == []
    assert body["transfer_package"]["documents"] == [docs["transferred"]]


def test_a_document_held_after_approval_is_skipped_and_proposed_again_once_released(world: World) -> None:
    w = world
    doomed, saved = make_document(w.author, data=b"one"), make_document(w.author, data=b"two")
    clock.advance(YEAR_AND_A_BIT)
    batch_id = _propose()
    with transaction() as s:
        approve(s, actor=w.manager, batch_id=batch_id)
    hold_id = _hold(w, saved)
    assert execute.execute_approved(get_engine()) == 1
    items = _items(batch_id)
    assert items[doomed].outcome == "destroyed"
    assert items[saved].outcome == "skipped" and hold_id in items[saved].outcome_note
    assert _disposition(saved) == "active" and _content(saved)[0][1] == b"two"
    assert _propose() is None  # still held
    with transaction() as s:
        holds.release_hold(s, actor=w.manager, hold_id=hold_id, reason="settled")
    assert set(_items(_propose())) == {saved}


def test_a_crashed_run_is_resumed_without_redoing_what_it_did(world: World) -> None:
    w = world
    docs = [make_document(w.author, data=f"doc {i}".encode()) for i in range(4)]
    clock.advance(YEAR_AND_A_BIT)
    batch_id = _propose()
    with transaction() as s:
        approve(s, actor=w.manager, batch_id=batch_id)

    class CrashAfterOneChunk:
        calls = 0

        def is_set(self) -> bool:
            self.calls += 1
            return self.calls > 1

    engine = get_engine()
    assert execute.claim(engine, owner="dead-runner") == batch_id
    assert not execute.run_batch(engine, batch_id=batch_id, owner="dead-runner", chunk=2, stop=CrashAfterOneChunk())
    done = {d: i.outcome_at for d, i in _items(batch_id).items() if i.outcome}
    assert len(done) == 2 and _batch(batch_id).state == "executing"
    assert execute.execute_approved(engine) == 0  # the dead runner's lease has not run out yet
    with transaction() as s:
        batch = s.get(DispositionBatch, batch_id)
        lease = {**batch.summary["lease"], "until": (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()}
        batch.summary = {**batch.summary, "lease": lease}
    assert execute.execute_approved(engine) == 1
    items = _items(batch_id)
    assert all(i.outcome == "destroyed" for i in items.values())
    assert {d: items[d].outcome_at for d in done} == done  # not redone
    with transaction(readonly=True) as s:
        destroyed = s.execute(select(AuditEntry.object_id).where(AuditEntry.action == "document.destroyed")).scalars()
        assert sorted(destroyed) == sorted(docs)  # each destroyed exactly once
        assert s.execute(select(func.count()).select_from(Tombstone)).scalar_one() == 4
    assert _batch(batch_id).state == "completed"
    _audit_ok()


def test_a_rejected_batch_destroys_nothing_and_sends_its_documents_to_review(world: World) -> None:
    w = world
    doc = make_document(w.author)
    clock.advance(YEAR_AND_A_BIT)
    batch_id = _propose()
    with transaction() as s, pytest.raises(InvalidInputError):
        reject(s, actor=w.manager, batch_id=batch_id, reason="  ")
    with transaction() as s:
        reject(s, actor=w.manager, batch_id=batch_id, reason="the rule is being revised")
    assert _batch(batch_id).state == "rejected" and _batch(batch_id).note == "the rule is being revised"
    assert _disposition(doc) == "review"
    with transaction() as s, pytest.raises(DispositionStateError):
        approve(s, actor=w.manager, batch_id=batch_id)
    assert execute.execute_approved(get_engine()) == 0
    assert _content(doc)[0][1] == b"records test content"


def test_exclusions_need_a_reason_known_documents_and_a_proposed_batch(world: World) -> None:
    w = world
    doc = make_document(w.author)
    clock.advance(YEAR_AND_A_BIT)
    batch_id = _propose()
    for kwargs, field in (({"document_ids": [doc], "reason": ""}, "reason"),
                          ({"document_ids": ["no-such-document"], "reason": "x"}, "document_ids"),
                          ({"document_ids": [], "reason": "x"}, "document_ids")):
        with transaction() as s, pytest.raises(InvalidInputError) as caught:
            exclude_items(s, actor=w.manager, batch_id=batch_id, **kwargs)
        assert caught.value.extra["field"] == field
    with transaction() as s, pytest.raises(InvalidInputError):  # one bad exclusion refuses the whole approval
        approve(s, actor=w.manager, batch_id=batch_id, exclude=[{"document_id": doc, "reason": ""}])
    assert _batch(batch_id).state == "proposed" and _disposition(doc) == "pending"
    with transaction() as s:
        exclude_items(s, actor=w.manager, batch_id=batch_id, document_ids=[doc], reason="under review")
    assert _items(batch_id)[doc].excluded and _disposition(doc) == "review"
    with transaction() as s:
        approve(s, actor=w.manager, batch_id=batch_id)
    with transaction() as s, pytest.raises(DispositionStateError):
        exclude_items(s, actor=w.manager, batch_id=batch_id, document_ids=[doc], reason="too late")


def test_only_records_managers_review_batches(world: World) -> None:
    w = world
    make_document(w.author)
    clock.advance(YEAR_AND_A_BIT)
    batch_id = _propose()
    with transaction(readonly=True) as s:
        with pytest.raises(NotFoundError):
            get_batch(s, actor=w.author, batch_id=batch_id)
        with pytest.raises(NotFoundError):
            list_items(s, actor=w.author, batch_id=batch_id)
        assert get_batch(s, actor=w.manager, batch_id=batch_id).id == batch_id
        page = list_items(s, actor=w.manager, batch_id=batch_id)
        [row] = page.items
        assert page.next_after is None
        assert row.title == "Records test" and row.document_type == "general" and row.class_code == "GEN-1Y"
    for action in (lambda s: approve(s, actor=w.author, batch_id=batch_id),
                   lambda s: reject(s, actor=w.author, batch_id=batch_id, reason="no")):
        with transaction() as s, pytest.raises(PermissionDeniedError):
            action(s)
    assert _batch(batch_id).state == "proposed"
