"""Locale-aware filters for letters (babel): `date`, `money`, `number`, `percent`.

The locale is the one of the render in progress (the customer's), falling back to en-GB. Amounts go through
`Decimal` (floats by their shortest repr, so 0.1 stays 0.1). An undefined value makes these filters fail rather
than print a misleading blank or zero.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, format_percent
from jinja2 import Undefined

from correspondence.rendering.state import current

_NAMED_DATE_FORMATS = ("short", "medium", "long", "full")
_NUMBER_PART = re.compile(r"[#,0]+(?:\.[#0]+)?")
_CURRENCY = re.compile(r"[A-Za-z]{3}")


def _shown(value: Any) -> str:
    """A short description of a bad argument for an error message (never the text of a whole container)."""
    return repr(value[:40]) if isinstance(value, str) else f"a {type(value).__name__}"


def _defined(value: Any, filter_name: str) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()  # raises UndefinedError naming the variable
    if value is None:
        raise ValueError(f"the {filter_name} filter got no value (None)")
    return value


def to_decimal(value: Any, filter_name: str) -> Decimal:
    """`value` as a finite Decimal, or ValueError naming the filter."""
    value = _defined(value, filter_name)
    try:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, Decimal):
            number = value
        elif isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(repr(value))
        elif isinstance(value, str):
            number = Decimal(value.strip())
        else:
            raise TypeError
    except (TypeError, InvalidOperation):
        raise ValueError(f"the {filter_name} filter needs a number, got {_shown(value)}") from None
    if not number.is_finite():
        raise ValueError(f"the {filter_name} filter needs a finite number, got {_shown(value)}")
    return number


def _pattern_with_decimals(pattern: str, decimals: int | None, filter_name: str) -> str | None:
    if decimals is None:
        return None
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 10:
        raise ValueError(f"the {filter_name} filter takes 0 to 10 decimals, got {_shown(decimals)}")
    positive = pattern.split(";")[0]
    match = _NUMBER_PART.search(positive)
    if match is None:
        return None
    integer = match.group(0).split(".")[0]
    fraction = "." + "0" * decimals if decimals else ""
    return positive[:match.start()] + integer + fraction + positive[match.end():]


def date_filter(value: Any, format: str = "long") -> str:  # noqa: A002 - the name template authors use
    """A date (or datetime, or ISO string) in the letter's locale: format short/medium/long/full or a pattern."""
    value = _defined(value, "date")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"the date filter needs an ISO date such as 2024-03-31, got {text[:40]!r}") from None
    if isinstance(value, dt.datetime):
        value = value.date()
    if not isinstance(value, dt.date):
        raise ValueError(f"the date filter needs a date, got {type(value).__name__}")
    if not isinstance(format, str) or not format or len(format) > 64:
        raise ValueError("the date filter's format is short, medium, long, full or a pattern such as 'd MMMM y'")
    return format_date(value, format=format, locale=current().locale)


def money(amount: Any, currency: str) -> str:
    """An amount in a currency, in the letter's locale: 1234.56 EUR -> "1.234,56 €" (de-DE), "€1,234.56" (en-GB)."""
    number = to_decimal(amount, "money")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise ValueError(f"the money filter needs an ISO 4217 currency code such as 'EUR', got {_shown(currency)}")
    return format_currency(number, currency.upper(), locale=current().locale)


def number(value: Any, decimals: int | None = None) -> str:
    """A number with the locale's separators; `decimals` fixes the number of decimals (rounding half-even)."""
    locale = current().locale
    pattern = _pattern_with_decimals(locale.decimal_formats[None].pattern, decimals, "number")
    return format_decimal(to_decimal(value, "number"), format=pattern, locale=locale)


def percent(value: Any, decimals: int = 0) -> str:
    """A fraction as a percentage in the locale: 0.125 -> "12%" (en-GB, half-even), with decimals=1 "12.5%"."""
    locale = current().locale
    pattern = _pattern_with_decimals(locale.percent_formats[None].pattern, decimals, "percent")
    return format_percent(to_decimal(value, "percent"), format=pattern, locale=locale)


FILTERS = {"date": date_filter, "money": money, "number": number, "percent": percent}
