"""The records scheduler: the sweep on POSTROOM_RECORDS_SWEEP_CRON (off when empty, a bad expression refused by
name), and the jobs it runs proposing and executing batches (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from records import clock, jobs
from records.models import DispositionBatch
from records.service.disposition import approve
from repository import runtime
from repository.db import transaction
from tests.records.support import make_class, make_document, start, user


@pytest.fixture
def scheduler_env(repo, monkeypatch):  # noqa: ANN001, ANN201
    def configure(cron: str) -> None:
        monkeypatch.setenv("POSTROOM_RECORDS_SWEEP_CRON", cron)
        monkeypatch.setenv("POSTROOM_RECORDS_SWEEP_AS", "system:nightly-sweep")
        runtime.reset()

    yield configure
    jobs.stop_scheduler()
    clock.reset()


def test_the_sweep_runs_on_its_cron_in_utc_and_is_off_when_empty(scheduler_env) -> None:  # noqa: ANN001
    scheduler_env("30 3 * * *")
    scheduler = jobs.start_scheduler()
    assert jobs.start_scheduler() is scheduler  # once per process
    sweep = scheduler.get_job("records-sweep")
    assert (sweep.next_run_time.hour, sweep.next_run_time.minute) == (3, 30)
    assert sweep.next_run_time.utcoffset() == dt.timedelta(0)
    assert scheduler.get_job("records-execute") is not None
    jobs.stop_scheduler()
    scheduler_env("")
    scheduler = jobs.start_scheduler()
    assert scheduler.get_job("records-sweep") is None and scheduler.get_job("records-execute") is not None


def test_a_bad_cron_expression_is_refused_naming_the_setting(scheduler_env) -> None:  # noqa: ANN001
    scheduler_env("every night")
    with pytest.raises(ValueError, match="POSTROOM_RECORDS_SWEEP_CRON"):
        jobs.start_scheduler()


def test_the_jobs_propose_as_the_configured_actor_and_execute_approved_batches(scheduler_env) -> None:  # noqa: ANN001
    scheduler_env("")
    start()
    manager, author = user("rita", "records_manager"), user("alice", "author")
    make_class(manager, "GEN-1Y", ["general"])
    make_document(author)
    clock.advance(dt.timedelta(days=400))
    jobs.run_sweep()
    with transaction(readonly=True) as s:
        batch = s.execute(select(DispositionBatch)).scalar_one()
        assert batch.proposed_by == "system:nightly-sweep" and batch.state == "proposed"
    jobs.run_execute()  # nothing approved yet
    with transaction() as s:
        approve(s, actor=manager, batch_id=batch.id)
    jobs.run_execute()
    with transaction(readonly=True) as s:
        assert s.get(DispositionBatch, batch.id).state == "completed"
