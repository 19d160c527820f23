"""Dates, money, numbers and percentages in the customer's locale (babel), with en-GB for unknown locales."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any

import pytest

from correspondence.errors import RenderError
from correspondence.rendering import compile_template, render_many, render_one
from tests.correspondence.docx_factory import make_docx, text_of

_cache: dict[str, Any] = {}


def render(expression: str, value: Any, locale: str = "en-GB") -> str:
    if expression not in _cache:
        _cache[expression] = compile_template(io.BytesIO(make_docx([f"[{{{{ {expression} }}}}]"])), blocks={})
    text = text_of(render_one(_cache[expression], {"v": value}, locale=locale))
    return text[text.index("[") + 1:text.rindex("]")].replace("\xa0", " ").replace("\u202f", " ")


@pytest.mark.parametrize("locale, expected", [
    ("de-DE", "1.234,56 €"), ("en-GB", "€1,234.56"), ("fr-FR", "1 234,56 €"), ("nl-NL", "€ 1.234,56"),
])
def test_money_in_euros_per_locale(locale: str, expected: str) -> None:
    assert render("v|money('EUR')", Decimal("1234.56"), locale) == expected


@pytest.mark.parametrize("value", [Decimal("1234.56"), "1234.56", 1234.56, "  1234.56 "])
def test_money_takes_decimals_strings_and_floats_exactly(value: object) -> None:
    assert render("v|money('GBP')", value) == "£1,234.56"


def test_money_keeps_pennies_exact_where_binary_floats_would_not() -> None:
    assert render("v|money('GBP')", 0.1 + 0.2) == "£0.30"
    assert render("v|money('GBP')", Decimal("1000000000000000.01")) == "£1,000,000,000,000,000.01"
    assert render("v|money('usd')", 5) == "US$5.00"


def test_dates_per_locale_and_format() -> None:
    day = dt.date(2024, 3, 5)
    assert render("v|date", day) == "5 March 2024"
    assert render("v|date", day, "de-DE") == "5. März 2024"
    assert render("v|date", day, "fr-FR") == "5 mars 2024"
    assert render("v|date('short')", day, "en-GB") == "05/03/2024"
    assert render("v|date('short')", day, "de-DE") == "05.03.24"
    assert render("v|date('d MMMM y')", day, "de-DE") == "5 März 2024"
    assert render("v|date('full')", day) == "Tuesday, 5 March 2024"


@pytest.mark.parametrize("value", ["2024-03-05", "2024-03-05T10:30:00", "2024-03-05T23:30:00+00:00",
                                   dt.datetime(2024, 3, 5, 8, 0)])
def test_dates_accept_iso_strings_and_datetimes(value: object) -> None:
    assert render("v|date", value) == "5 March 2024"


def test_numbers_and_percentages_per_locale() -> None:
    assert render("v|number", 1234567.891) == "1,234,567.891"
    assert render("v|number", Decimal("1234567.891"), "de-DE") == "1.234.567,891"
    assert render("v|number(2)", 1234.5) == "1,234.50"
    assert render("v|number(0)", "1234.5", "de-DE") == "1.234"  # half-even
    assert render("v|percent", 0.125) == "12%"
    assert render("v|percent(1)", 0.125, "de-DE") == "12,5 %"
    assert render("v|percent(1)", "0.0375") == "3.8%"


@pytest.mark.parametrize("locale", ["xx-YY", "", "not a locale", "../../etc"])
def test_unknown_locales_fall_back_to_en_gb(locale: str) -> None:
    assert render("v|money('GBP')", 1234.5, locale) == "£1,234.50"
    assert render("v|date", dt.date(2024, 3, 5), locale) == "5 March 2024"


@pytest.mark.parametrize("expression, value, message", [
    ("v|money('EUR')", "twelve", "needs a number"),
    ("v|money('EUR')", True, "needs a number"),
    ("v|money('EUR')", "NaN", "finite"),
    ("v|money('EURO')", 1, "currency code"),
    ("v|date", "05/03/2024", "ISO date"),
    ("v|date", 5, "needs a date"),
    ("v|number(99)", 1, "0 to 10 decimals"),
    ("v|percent", None, "no value"),
])
def test_bad_values_are_render_errors_naming_the_filter(expression: str, value: object, message: str) -> None:
    with pytest.raises(RenderError, match=message) as caught:
        render(expression, value)
    assert caught.value.extra["paragraph"] == f"[{{{{ {expression} }}}}]"


def test_each_letter_of_a_batch_uses_its_customers_locale() -> None:
    compiled = compile_template(io.BytesIO(make_docx(["{{ v|money('EUR') }} on {{ d|date }}"])), blocks={})
    contexts = [{"v": 1234.5, "d": "2024-03-05", "customer": {"locale": loc}} for loc in ("de-DE", "en-GB", "fr-FR")]
    lines = [line.replace("\xa0", " ").replace("\u202f", " ")
             for line in text_of(render_many(compiled, contexts).docx).splitlines() if line.strip()]
    assert lines == ["1.234,50 € on 5. März 2024", "€1,234.50 on 5 March 2024", "1 234,50 € on 5 mars 2024"]
