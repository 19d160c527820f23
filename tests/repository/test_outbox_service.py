"""The outbox: events commit with the change, are delivered at least once, retried with backoff, and a
subscriber that already handled an event is not called again for it."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select

from repository import events, service
from repository.db import get_engine, transaction
from repository.models import OutboxDelivery, OutboxEvent
from tests.repository.helpers import staged

pytestmark = pytest.mark.usefixtures("repo")


@pytest.fixture(autouse=True)
def _no_subscribers():  # noqa: ANN202
    events.clear_subscribers()
    yield
    events.clear_subscribers()


def _upload(account) -> str:  # noqa: ANN001
    with transaction() as s:
        return service.create_document(s, actor=account.user, title="t", document_type="general",
                                       content=staged(b"outbox")).id


def test_event_commits_with_the_change_and_not_without_it(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    with pytest.raises(RuntimeError), transaction() as s:
        service.create_document(s, actor=alice.user, title="t", document_type="general", content=staged(b"x"))
        raise RuntimeError("the caller's transaction fails")
    with transaction() as s:
        assert s.execute(select(OutboxEvent).where(OutboxEvent.name == events.DOCUMENT_CREATED)).first() is None
    doc_id = _upload(alice)
    with transaction() as s:
        payloads = [e.payload for e in s.execute(select(OutboxEvent).where(
            OutboxEvent.name == events.DOCUMENT_CREATED)).scalars()]
    assert payloads == [{"document_id": doc_id, "version": "1.0", "document_type": "general", "customer_id": None}]


def test_each_subscriber_gets_each_event_once(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    seen: dict[str, list[str]] = {"index": [], "classify": []}
    events.subscribe(events.DOCUMENT_CREATED, "index", lambda s, e: seen["index"].append(e.payload["document_id"]))
    events.subscribe(events.DOCUMENT_CREATED, "classify",
                     lambda s, e: seen["classify"].append(e.payload["document_id"]))
    ids = [_upload(alice) for _ in range(3)]
    assert events.deliver_pending(get_engine()) >= 3
    assert events.deliver_pending(get_engine()) == 0
    assert seen == {"index": ids, "classify": ids}
    with transaction() as s:
        assert events.pending_count(s) == 0


def test_failing_subscriber_is_retried_with_backoff_and_the_other_is_not_repeated(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    calls = {"flaky": 0, "steady": 0}

    def flaky(_s, _e) -> None:  # noqa: ANN001
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise ConnectionError("search backend down")

    events.subscribe(events.DOCUMENT_CREATED, "flaky", flaky)
    events.subscribe(events.DOCUMENT_CREATED, "steady", lambda s, e: calls.__setitem__("steady", calls["steady"] + 1))
    _upload(alice)
    events.deliver_pending(get_engine())
    with transaction() as s:
        event = s.execute(select(OutboxEvent).where(OutboxEvent.name == events.DOCUMENT_CREATED)).scalar_one()
        assert event.delivered_at is None and event.attempts == 1
        assert "search backend down" in event.last_error
        assert event.available_at > dt.datetime.now(dt.UTC)  # backing off, not due yet
        event.available_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    assert events.deliver_pending(get_engine()) == 1
    assert calls == {"flaky": 2, "steady": 1}
    with transaction() as s:
        event = s.execute(select(OutboxEvent).where(OutboxEvent.name == events.DOCUMENT_CREATED)).scalar_one()
        assert event.delivered_at is not None
        assert sorted(s.execute(select(OutboxDelivery.subscriber)).scalars()) == ["flaky", "steady"]


def test_event_is_given_up_after_max_attempts(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")

    def broken(_s, _e) -> None:  # noqa: ANN001
        raise ValueError("always")

    events.subscribe(events.DOCUMENT_CREATED, "broken", broken)
    _upload(alice)
    for _ in range(3):
        events.deliver_pending(get_engine(), max_attempts=3)
        with transaction() as s:
            for e in s.execute(select(OutboxEvent)).scalars():
                e.available_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with transaction() as s:
        event = s.execute(select(OutboxEvent).where(OutboxEvent.name == events.DOCUMENT_CREATED)).scalar_one()
        assert event.attempts == 3 and event.failed_at is not None and event.delivered_at is None


def test_subscriber_effects_roll_back_with_a_failed_delivery(make_user) -> None:  # noqa: ANN001
    """A handler's writes and its delivery mark commit together, so a failure leaves no half-done effect."""
    alice = make_user("alice", "author")
    doc_id = _upload(alice)

    def half_done(session, _event) -> None:  # noqa: ANN001
        service.update_document(session, actor=alice.user, document_id=doc_id, expected_revision=None,
                                title="changed by a subscriber")
        raise RuntimeError("fails after writing")

    events.subscribe(events.DOCUMENT_CREATED, "half", half_done)
    events.deliver_pending(get_engine())
    with transaction() as s:
        assert service.get_document(s, actor=alice.user, document_id=doc_id).title == "t"
        assert s.execute(select(OutboxDelivery)).first() is None


def test_worker_loop_delivers_until_stopped(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    delivered = threading.Event()
    events.subscribe(events.DOCUMENT_CREATED, "signal", lambda s, e: delivered.set())
    stop = threading.Event()
    worker = threading.Thread(target=events.run_worker, args=(get_engine(), stop), kwargs={"poll_seconds": 0.05})
    worker.start()
    try:
        _upload(alice)
        assert delivered.wait(10), "the worker did not deliver the event"
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive()
