"""Records' scheduled jobs, run by `postroom serve` and `postroom worker`: the disposition sweep on
POSTROOM_RECORDS_SWEEP_CRON (UTC; "" turns it off) and, every 30 seconds, the execution of approved batches.

Several processes may run them at once: sweeps are serialised in the database (a second finds the documents
already pending), and a batch is executed by whichever process holds its lease.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from records.service.disposition import execute_approved, propose
from repository.config import get_settings
from repository.db import get_engine, transaction

log = logging.getLogger(__name__)
EXECUTE_EVERY = dt.timedelta(seconds=30)

_lock = threading.Lock()
_scheduler: BackgroundScheduler | None = None
_stop = threading.Event()


def sweep_trigger(expression: str) -> CronTrigger:
    """The sweep's schedule from a crontab expression (UTC); ValueError naming the setting when it is bad."""
    try:
        return CronTrigger.from_crontab(expression, timezone=dt.UTC)
    except ValueError as exc:
        raise ValueError(f"POSTROOM_RECORDS_SWEEP_CRON={expression!r} is not a crontab expression (such as "
                         f"'15 2 * * *'; empty turns the sweep off): {exc}") from exc


def run_sweep() -> None:
    """Propose a disposition batch of whatever is due now, in its own transaction."""
    with transaction() as session:
        report = propose(session, actor=get_settings().records_sweep_as)
    if report.batch_id:
        log.info("disposition sweep proposed batch %s with %d documents", report.batch_id, report.total)


def run_execute() -> None:
    """Carry out approved disposition batches (stopping between chunks when the scheduler stops)."""
    done = execute_approved(get_engine(), stop=_stop)
    if done:
        log.info("executed %d disposition batch(es)", done)


def start_scheduler() -> BackgroundScheduler:
    """Start the records scheduler in this process (once); ValueError for a bad sweep schedule."""
    global _scheduler
    with _lock:
        if _scheduler is not None:
            return _scheduler
        cron = get_settings().records_sweep_cron.strip()
        scheduler = BackgroundScheduler(timezone=dt.UTC, job_defaults={"coalesce": True, "max_instances": 1})
        if cron:
            scheduler.add_job(run_sweep, sweep_trigger(cron), id="records-sweep", name="disposition sweep",
                              misfire_grace_time=3600)
        scheduler.add_job(run_execute, IntervalTrigger(seconds=EXECUTE_EVERY.total_seconds()),
                          id="records-execute", name="disposition execution")
        scheduler.start()
        _scheduler = scheduler
        return scheduler


def stop_scheduler() -> None:
    """Stop the scheduler, letting a running execution finish its chunk in flight."""
    global _scheduler
    with _lock:
        if _scheduler is None:
            return
        _stop.set()
        _scheduler.shutdown(wait=True)
        _scheduler = None
        _stop.clear()
