"""Retention arithmetic: when a document falls due, from the moment its clock started and its class's rule.

The cutoff comes first, as in DoD 5015.2 and MoReq2010: a rule "cut off at the end of the calendar year, keep
7 years" keeps a document created on 3 March 2020 until 1 January 2028. Months and years are calendar months
and years (31 January + 1 month = 28/29 February).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dateutil.relativedelta import relativedelta


@dataclass(frozen=True)
class Rule:
    """The parts of a retention rule that decide a due date."""

    period_value: int
    period_unit: str  # days | months | years
    cutoff: str | None = None  # None | calendar_year | fiscal_year


def fiscal_start(setting: str) -> tuple[int, int]:
    """(month, day) from a POSTROOM_FISCAL_YEAR_START value like "04-01"."""
    month, day = setting.split("-")
    return int(month), int(day)


def cutoff_of(trigger_at: dt.datetime, cutoff: str | None, fiscal: tuple[int, int] = (4, 1)) -> dt.datetime:
    """The moment the period starts: the trigger itself, or the end of its calendar or fiscal year."""
    at = trigger_at.astimezone(dt.UTC)
    if cutoff is None:
        return at
    if cutoff == "calendar_year":
        return dt.datetime(at.year + 1, 1, 1, tzinfo=dt.UTC)
    if cutoff == "fiscal_year":
        month, day = fiscal
        start = _on(at.year, month, day)
        return start if at < start else _on(at.year + 1, month, day)
    raise ValueError(f"unknown cutoff {cutoff!r}")


def _on(year: int, month: int, day: int) -> dt.datetime:
    # A fiscal year starting on 29 February starts on 1 March in other years.
    try:
        return dt.datetime(year, month, day, tzinfo=dt.UTC)
    except ValueError:
        return dt.datetime(year, month, 1, tzinfo=dt.UTC) + relativedelta(months=1)


def due_date(trigger_at: dt.datetime | None, rule: Rule, fiscal: tuple[int, int] = (4, 1)) -> dt.datetime | None:
    """When retention ends, or None while the trigger has not happened."""
    if trigger_at is None:
        return None
    start = cutoff_of(trigger_at, rule.cutoff, fiscal)
    return start + relativedelta(**{rule.period_unit: rule.period_value})
