"""Due-date arithmetic: cutoffs first, then calendar periods."""

from __future__ import annotations

import datetime as dt

import pytest

from records.retention import Rule, cutoff_of, due_date, fiscal_start


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def test_a_period_without_cutoff_counts_from_the_trigger() -> None:
    assert due_date(at(2020, 3, 3, 10), Rule(30, "days")) == at(2020, 4, 2, 10)
    assert due_date(at(2020, 3, 3), Rule(7, "years")) == at(2027, 3, 3)


def test_months_are_calendar_months() -> None:
    assert due_date(at(2021, 1, 31), Rule(1, "months")) == at(2021, 2, 28)
    assert due_date(at(2020, 2, 29), Rule(1, "years")) == at(2021, 2, 28)


def test_calendar_year_cutoff_comes_before_the_period() -> None:
    # created 3 March 2020, cut off at the end of 2020, kept 7 years: due 1 January 2028
    assert due_date(at(2020, 3, 3), Rule(7, "years", "calendar_year")) == at(2028, 1, 1)
    assert due_date(at(2020, 12, 31, 23, 59), Rule(0, "days", "calendar_year")) == at(2021, 1, 1)


def test_fiscal_year_cutoff_uses_the_configured_start() -> None:
    april = fiscal_start("04-06")
    assert cutoff_of(at(2024, 4, 5), "fiscal_year", april) == at(2024, 4, 6)
    assert cutoff_of(at(2024, 4, 6), "fiscal_year", april) == at(2025, 4, 6)
    assert due_date(at(2024, 5, 1), Rule(6, "years", "fiscal_year"), april) == at(2031, 4, 6)


def test_no_trigger_means_no_due_date() -> None:
    assert due_date(None, Rule(1, "years")) is None


def test_times_in_other_zones_are_compared_in_utc() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    # 1 January 2021 01:00 at +02:00 is still 2020 in UTC
    assert cutoff_of(dt.datetime(2021, 1, 1, 1, tzinfo=plus_two), "calendar_year") == at(2021, 1, 1)


def test_unknown_cutoff_is_refused() -> None:
    with pytest.raises(ValueError):
        cutoff_of(at(2020, 1, 1), "lunar_year")
