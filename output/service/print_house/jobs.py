"""Print runs as jobs that commit: one made now (`make_run`, for the CLI), and the daily run the dispatcher loop
makes at POSTROOM_PRINT_RUN_AT (HH:MM, UTC).

Decisions:
- One scheduled run a day: the run records its day (`scheduled_on`, unique), so several dispatcher processes
  make it once; the one that loses the race has its transaction refused and does nothing.
- A day with nothing to print at HH:MM makes its run as soon as something is queued later that day.
- The run is made by the staff user POSTROOM_PRINT_RUN_AS (admin by default); its documents need an owner.
- Only with POSTROOM_PRINT_ROUTE=house; the loop looks at most once a minute.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from output.models import PrintRun
from output.service.print_house._errors import NothingToPrintError
from output.service.print_house.runs import build_run, plan_run, record_run
from repository.config import Settings, get_settings
from repository.db import transaction
from repository.models import User
from repository.types import utcnow

log = logging.getLogger(__name__)
LOOK_EVERY = dt.timedelta(minutes=1)


def _run_at(settings: Settings) -> dt.time | None:
    if settings.print_route != "house" or not settings.print_run_at:
        return None
    hours, minutes = settings.print_run_at.split(":")
    return dt.time(int(hours), int(minutes), tzinfo=dt.UTC)


def make_run(engine: Engine, *, actor: User, now: dt.datetime, scheduled_on: dt.date | None = None,
             settings: Settings | None = None) -> PrintRun:
    """Plan and build a run in a read-only transaction, then record it in a write transaction of its own (a job:
    it commits); NothingToPrintError when there is nothing to print."""
    with transaction(engine, readonly=True) as session:
        built = build_run(session, plan=plan_run(session, actor=actor, now=now, settings=settings), settings=settings)
    try:
        with transaction(engine) as session:
            return record_run(session, actor=actor, built=built, scheduled_on=scheduled_on)
    finally:
        built.release()


def run_scheduled(engine: Engine, *, settings: Settings, now: dt.datetime) -> int:
    """Make today's run if it is due and not made yet; how many pieces it printed (0 when none was made)."""
    at = _run_at(settings)
    if at is None or now.astimezone(dt.UTC).timetz() < at:
        return 0
    day = now.astimezone(dt.UTC).date()
    with transaction(engine, readonly=True) as session:
        if session.execute(select(PrintRun.id).where(PrintRun.scheduled_on == day)).first() is not None:
            return 0
        actor = session.execute(select(User).where(User.username == settings.print_run_as,
                                                   User.active.is_(True))).scalar_one_or_none()
        if actor is None:
            log.warning("no daily print run: POSTROOM_PRINT_RUN_AS names no active user (%r)", settings.print_run_as)
            return 0
        session.expunge(actor)
    try:
        pieces = make_run(engine, actor=actor, now=now, scheduled_on=day, settings=settings).pieces
    except NothingToPrintError:
        return 0
    except IntegrityError:  # another process made the day's run first
        return 0
    log.info("daily print run of %s: %d pieces", day, pieces)
    return pieces


class DailyRun:
    """The dispatcher loop's hook: `poll()` makes the day's run when it is due (looking at most once a minute)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._next_look = dt.datetime.min.replace(tzinfo=dt.UTC)

    def poll(self) -> int:
        """Make today's run if due; the pieces it printed."""
        now = utcnow()
        if now < self._next_look:
            return 0
        self._next_look = now + LOOK_EVERY
        return run_scheduled(self.engine, settings=get_settings(), now=now)
