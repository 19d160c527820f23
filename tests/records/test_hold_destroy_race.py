"""A legal hold placed at the very moment a disposition destroys the same document: whichever commits first wins
and the other sees it. Never a destroyed document under a hold that claims to preserve it, never a held document
destroyed (SQLite and PostgreSQL, with two real concurrent transactions)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from records import clock
from records.models import DispositionItem, HoldItem
from records.service import holds
from records.service.disposition import approve, execute, propose
from repository.db import get_engine, transaction
from repository.errors import InvalidInputError
from repository.models import Document, User
from tests.records.support import make_class, make_document, start, user

WAIT = 10  # seconds: generous bounds; the assertions below never wait this long when the code is right


@pytest.fixture
def due(repo) -> tuple[User, str, str]:  # noqa: ANN001
    """A records manager, and a document due for destruction in an approved disposition batch."""
    start()
    manager, author = user("rita", "records_manager"), user("alice", "author")
    make_class(manager, "GEN-1Y", ["general"])
    document_id = make_document(author, data=b"doomed")
    clock.advance(dt.timedelta(days=400))
    with transaction() as s:
        batch_id = propose(s, actor="system:records-sweep").batch_id
        approve(s, actor=manager, batch_id=batch_id)
    yield manager, document_id, batch_id
    clock.reset()


def _in_thread(target: Callable[[], object]) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = target()
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _hold_until(manager: User, document_id: str, added: threading.Event, go: threading.Event) -> str:
    """Place a hold on the document and keep its transaction open (`added` set) until `go`; the hold's id."""
    with transaction() as s:
        hold = holds.create_hold(s, actor=manager, name="Late claim", reason="litigation")
        holds.add_items(s, actor=manager, hold_id=hold.id, document_ids=[document_id])
        added.set()
        assert go.wait(WAIT)
        return hold.id


def _state(document_id: str) -> str:
    with transaction(readonly=True) as s:
        return s.get(Document, document_id).state


def test_a_hold_being_placed_makes_the_destruction_wait_and_skip(due) -> None:  # noqa: ANN001
    manager, document_id, batch_id = due
    added, go = threading.Event(), threading.Event()
    holder, held = _in_thread(lambda: _hold_until(manager, document_id, added, go))
    assert added.wait(WAIT)
    runner, ran = _in_thread(lambda: execute.execute_approved(get_engine()))
    runner.join(0.5)
    assert runner.is_alive(), "the disposition went ahead while a hold on the document was being placed"
    go.set()
    holder.join(WAIT)
    runner.join(WAIT)
    assert "error" not in held and "error" not in ran, (held, ran)
    with transaction(readonly=True) as s:
        item = s.execute(select(DispositionItem).where(DispositionItem.batch_id == batch_id)).scalar_one()
        assert item.outcome == "skipped" and held["value"] in item.outcome_note
    assert _state(document_id) == "active"


def test_a_destruction_in_progress_makes_the_hold_wait_and_refuse(due, monkeypatch) -> None:  # noqa: ANN001
    manager, document_id, _ = due
    destroyed, go = threading.Event(), threading.Event()
    original = execute.destroy_with_tombstone

    def destroy_then_pause(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        gone = original(*args, **kwargs)
        destroyed.set()
        assert go.wait(WAIT)
        return gone

    monkeypatch.setattr(execute, "destroy_with_tombstone", destroy_then_pause)
    runner, ran = _in_thread(lambda: execute.execute_approved(get_engine()))
    assert destroyed.wait(WAIT)

    def place_hold() -> None:
        with transaction() as s:
            hold = holds.create_hold(s, actor=manager, name="Late claim", reason="litigation")
            holds.add_items(s, actor=manager, hold_id=hold.id, document_ids=[document_id])

    holder, held = _in_thread(place_hold)
    holder.join(0.5)
    assert holder.is_alive(), "the hold was placed on a document whose destruction had not committed yet"
    go.set()
    runner.join(WAIT)
    holder.join(WAIT)
    assert ran == {"value": 1}
    assert isinstance(held.get("error"), InvalidInputError) and "destroyed" in held["error"].detail
    assert _state(document_id) == "destroyed"
    with transaction(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(HoldItem)).scalar_one() == 0  # nothing half-placed


def test_an_erasure_waits_for_a_hold_being_placed_and_keeps_the_document(repo) -> None:  # noqa: ANN001
    from records.service import erasure
    from repository import service

    start()
    manager, author = user("rita", "records_manager"), user("alice", "author")
    with transaction() as s:
        customer_id = service.create_customer(s, actor=author, external_ref="C-RACE", name="Rae Race").id
    document_id = make_document(author, data=b"wanted in court", customer_id=customer_id)
    added, go = threading.Event(), threading.Event()

    def erase() -> dict:
        with transaction() as s:
            return erasure.request_erasure(s, actor=manager, customer_id=customer_id).request.report

    holder, held = _in_thread(lambda: _hold_until(manager, document_id, added, go))
    assert added.wait(WAIT)
    eraser, erased = _in_thread(erase)
    eraser.join(0.5)
    go.set()
    holder.join(WAIT)
    eraser.join(WAIT)
    assert "error" not in held and "error" not in erased, (held, erased)
    assert erased["value"]["erased"] == []
    assert [(k["document_id"], k["reason"]) for k in erased["value"]["kept"]] == [(document_id, "legal_hold")]
    assert _state(document_id) == "active"
