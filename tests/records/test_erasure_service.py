"""Erasure requests: what may go is crypto-shredded with a tombstone; what must stay is kept, restricted to
records managers, scheduled for erasure at its due date, and reported with the reason."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from records import clock
from records import events as names
from records.models import DispositionItem, ErasureRequest, HoldItem, RecordInfo, Tombstone
from records.service import erasure
from repository import vault
from repository.db import transaction
from repository.errors import IntegrityError, NotFoundError, PermissionDeniedError
from repository.models import AuditEntry, DataKey, Document, DocumentVersion, OutboxEvent
from repository.runtime import get_runtime
from repository.service import documents
from repository.service.destruction import delete_blobs
from tests.records import erasure_support
from tests.records.erasure_support import LEGAL_BASIS, Scenario


@pytest.fixture
def scenario(repo, make_user) -> Scenario:  # noqa: ANN001
    clock.reset()
    yield erasure_support.build(make_user)
    clock.reset()


def _erase(sc: Scenario, reference: str | None = "ticket 42") -> tuple[dict, list[str], str]:
    with transaction() as s:
        result = erasure.request_erasure(s, actor=sc.manager.user, customer_id=sc.customer_id, reference=reference)
        report, request_id = result.request.report, result.request.id
    return report, result.blob_keys, request_id


def _blob_keys(document_id: str) -> list[str]:
    with transaction(readonly=True) as s:
        return list(s.execute(select(DocumentVersion.blob_key).where(DocumentVersion.document_id == document_id))
                    .scalars())


def test_erases_what_may_go_and_keeps_the_rest_with_reasons(scenario: Scenario) -> None:
    sc = scenario
    plain_blobs = _blob_keys(sc.plain)
    report, keys, request_id = _erase(sc)
    assert sorted(e["document_id"] for e in report["erased"]) == sorted([sc.plain, sc.unrecorded])
    kept = {k["document_id"]: k for k in report["kept"]}
    assert set(kept) == {sc.held, sc.obligation, sc.record}
    assert kept[sc.held]["reason"] == "legal_hold" and kept[sc.held]["holds"] == [sc.hold_id]
    assert kept[sc.held]["until"] is None
    assert kept[sc.obligation]["reason"] == "legal_obligation"
    assert kept[sc.obligation]["legal_basis"] == LEGAL_BASIS
    assert dt.datetime.fromisoformat(kept[sc.obligation]["until"]) == sc.obligation_due
    assert sc.obligation_due > clock.now() + dt.timedelta(days=5 * 365)
    assert kept[sc.record]["reason"] == "retention" and kept[sc.record]["legal_basis"] is None
    assert set(plain_blobs) <= set(keys)

    with transaction(readonly=True) as s:
        stored = s.get(ErasureRequest, request_id)
        assert (stored.erased, stored.kept, stored.reference) == (2, 3, "ticket 42")
        assert stored.report == report
        tomb = s.get(Tombstone, sc.plain)
        assert (tomb.action, tomb.erasure_id, tomb.approved_by) == ("erasure", request_id, "rita")
        assert s.get(DataKey, sc.plain).wrapped_key is None
        for kept_id in (sc.held, sc.obligation, sc.record):
            assert s.get(Document, kept_id).restricted is True
            assert s.get(RecordInfo, kept_id).erasure_id == request_id
        audit = s.execute(select(AuditEntry).where(AuditEntry.action == names.ERASURE_REQUESTED)).scalar_one()
        assert (audit.object_id, audit.details["erased"], audit.details["kept"]) == (request_id, 2, 3)
        assert s.execute(select(OutboxEvent).where(OutboxEvent.name == names.ERASURE_REQUESTED)).scalar_one()


def test_erased_content_is_unreadable_and_its_blobs_go_after_commit(scenario: Scenario) -> None:
    sc = scenario
    _, keys, _ = _erase(sc)
    store = get_runtime().store
    assert keys and all(store.exists(k) for k in keys)  # the transaction decided; the caller deletes
    assert delete_blobs(keys) == []
    assert not any(store.exists(k) for k in keys)
    with transaction(readonly=True) as s:
        with pytest.raises(NotFoundError):
            documents.get_document(s, actor=sc.manager.user, document_id=sc.plain)
        with pytest.raises(IntegrityError):
            vault.data_key(s, get_runtime(), sc.plain)
        assert s.get(Document, sc.plain).state == "destroyed"


def test_kept_documents_are_visible_to_records_managers_alone(scenario: Scenario) -> None:
    sc = scenario
    _erase(sc)
    with transaction(readonly=True) as s:
        for account in (sc.helpdesk, sc.author):
            with pytest.raises(NotFoundError):
                documents.get_document(s, actor=account.user, document_id=sc.held)
            listed = documents.list_documents(s, actor=account.user, customer_id=sc.customer_id).items
            assert listed == []
        kept = documents.get_document(s, actor=sc.manager.user, document_id=sc.held)
        version = s.execute(select(DocumentVersion).where(DocumentVersion.document_id == kept.id)).scalar_one()
        assert b"".join(vault.read_content(s, runtime=get_runtime(), version=version)) == b"held content"
        listed = documents.list_documents(s, actor=sc.manager.user, customer_id=sc.customer_id).items
        assert {d.id for d in listed} == {sc.held, sc.obligation, sc.record}


def test_a_second_request_keeps_the_same_documents_and_erases_nothing_twice(scenario: Scenario) -> None:
    sc = scenario
    _erase(sc)
    report, keys, second = _erase(sc, reference=None)
    assert report["erased"] == [] and keys == []
    assert {k["document_id"] for k in report["kept"]} == {sc.held, sc.obligation, sc.record}
    with transaction(readonly=True) as s:
        assert s.get(RecordInfo, sc.record).erasure_id == second
        listed = erasure.list_erasures(s, actor=sc.manager.user, customer_id=sc.customer_id)
        assert [r.id for r in listed][0] == second and len(listed) == 2


def test_once_retention_ends_the_kept_record_is_erased(scenario: Scenario) -> None:
    sc = scenario
    _erase(sc)
    clock.advance(sc.obligation_due - clock.now() + dt.timedelta(days=1))
    report, _, request_id = _erase(sc)
    # Past the due date the legal obligation no longer keeps it (the record of a class without a legal basis is
    # due two years after creation: gone too); the hold still keeps its document.
    assert {e["document_id"] for e in report["erased"]} == {sc.obligation, sc.record}
    assert [k["document_id"] for k in report["kept"]] == [sc.held]
    with transaction(readonly=True) as s:
        assert s.get(Tombstone, sc.obligation).erasure_id == request_id
        assert s.get(Tombstone, sc.obligation).due_at == sc.obligation_due


def test_many_documents_are_decided_chunk_by_chunk(scenario: Scenario, monkeypatch) -> None:  # noqa: ANN001
    sc = scenario
    extra = [erasure_support.add_document(sc.author, sc.customer_id, "general", f"n{i}".encode()) for i in range(4)]
    monkeypatch.setattr(erasure, "CHUNK", 2)
    report, _, _ = _erase(sc)
    assert {e["document_id"] for e in report["erased"]} == {sc.plain, sc.unrecorded, *extra}
    assert len(report["kept"]) == 3
    assert all(d.state == "destroyed" for d in erasure_support.customer_documents(sc.customer_id)
               if d.id in {sc.plain, sc.unrecorded, *extra})


def test_unclassified_documents_are_classified_before_deciding(scenario: Scenario) -> None:
    sc = scenario
    with transaction() as s:
        document = documents.create_document(s, actor=sc.author.user, title="late", document_type="correspondence",
                                             content=erasure_support.staged(b"late"), customer_id=sc.customer_id)
        late = document.id
    report, _, _ = _erase(sc)
    kept = {k["document_id"]: k for k in report["kept"]}
    # Not declared, but its class's legal basis obliges keeping it while its retention runs.
    assert kept[late]["reason"] == "legal_obligation" and kept[late]["legal_basis"] == LEGAL_BASIS
    with transaction(readonly=True) as s:
        assert s.get(RecordInfo, late).class_id is not None


def test_only_records_managers_may_request_or_read_erasures(scenario: Scenario) -> None:
    sc = scenario
    with transaction() as s:
        with pytest.raises(PermissionDeniedError):
            erasure.request_erasure(s, actor=sc.helpdesk.user, customer_id=sc.customer_id)
    _, _, request_id = _erase(sc)
    with transaction(readonly=True) as s:
        with pytest.raises(NotFoundError):
            erasure.get_erasure(s, actor=sc.helpdesk.user, erasure_id=request_id)
        with pytest.raises(NotFoundError):
            erasure.list_erasures(s, actor=sc.author.user, customer_id=sc.customer_id)
        assert erasure.get_erasure(s, actor=sc.manager.user, erasure_id=request_id).kept == 3
    assert {d.state for d in erasure_support.customer_documents(sc.customer_id)} == {"active", "destroyed"}


def test_unknown_customer_and_bad_reference_change_nothing(scenario: Scenario) -> None:
    sc = scenario
    with transaction() as s:
        with pytest.raises(NotFoundError):
            erasure.request_erasure(s, actor=sc.manager.user, customer_id="no-such-customer")
    with pytest.raises(erasure.InvalidInputError):
        with transaction() as s:
            erasure.request_erasure(s, actor=sc.manager.user, customer_id=sc.customer_id, reference="a\nb")
    with transaction(readonly=True) as s:
        assert s.execute(select(ErasureRequest)).first() is None
    assert all(d.state == "active" for d in erasure_support.customer_documents(sc.customer_id))


def test_the_sweep_proposes_kept_documents_for_destruction_when_due_and_released(scenario: Scenario) -> None:
    from records.service.disposition.sweep import propose

    sc = scenario
    _erase(sc)
    clock.advance(sc.obligation_due - clock.now() + dt.timedelta(days=1))
    with transaction() as s:
        batch_id = propose(s, actor="test").batch_id
    with transaction(readonly=True) as s:
        items = {i.document_id: i.action for i in s.execute(
            select(DispositionItem).where(DispositionItem.batch_id == batch_id)).scalars()}
    # Its class says "review"; the erasure request makes it "destroy". The held document waits for its hold.
    assert items == {sc.obligation: "destroy", sc.record: "destroy"}
    items = _release_and_propose(sc.hold_id)
    assert items == {sc.held: "destroy"}


def _release_and_propose(hold_id: str) -> dict[str, str]:
    """Release the hold, run the sweep, and give the proposed batch's documents with their actions."""
    from records.service.disposition.sweep import propose

    with transaction() as s:
        s.execute(update(HoldItem).where(HoldItem.hold_id == hold_id).values(released_at=clock.now()))
    with transaction() as s:
        batch_id = propose(s, actor="test").batch_id
    with transaction(readonly=True) as s:
        return {i.document_id: i.action for i in s.execute(
            select(DispositionItem).where(DispositionItem.batch_id == batch_id)).scalars()}


def test_a_rule_change_or_reclassification_keeps_a_held_documents_erasure_date(scenario: Scenario) -> None:
    """A document an erasure request kept only for its hold stays due from the request: a longer rule, or a
    reclassification, does not quietly undo the erasure once the hold is released."""
    from records.service import classification, fileplan

    sc = scenario
    extra_hold = erasure_support.place_hold(sc.manager, sc.unrecorded)  # a letter, 2-year class, not declared
    _, _, request_id = _erase(sc)
    with transaction(readonly=True) as s:
        erased_at = s.get(ErasureRequest, request_id).requested_at
        class_id = s.get(RecordInfo, sc.unrecorded).class_id
        assert s.get(RecordInfo, sc.unrecorded).due_at == erased_at
    with transaction() as s:
        fileplan.update_class(s, actor=sc.manager.user, class_id=class_id, reason="longer", period_value=10)
        classification.reclassify(s, actor=sc.manager.user, document_id=sc.unrecorded, class_ref=class_id,
                                  reason="filed again")
    with transaction(readonly=True) as s:
        assert s.get(RecordInfo, sc.unrecorded).due_at == erased_at
        assert s.get(RecordInfo, sc.record).due_at > erased_at + dt.timedelta(days=9 * 365)  # a record follows it
    items = _release_and_propose(extra_hold)
    assert items == {sc.unrecorded: "destroy"}
