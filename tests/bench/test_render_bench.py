"""Rendering a one-page letter (~15 variables, a 5-row table, a logo): cached render_one and batched render_many,
against docxtpl rendering a fresh DocxTemplate per letter in the same run.

Targets (issue 3): render_one >= 100 letters/s; render_many (1,000 letters in one DOCX) >= 2,000 letters/s.
"""

from __future__ import annotations

import io
import time
from decimal import Decimal

import pytest
from docx import Document
from docx.shared import Mm
from docxtpl import DocxTemplate, InlineImage
from jinja2.sandbox import ImmutableSandboxedEnvironment

from correspondence.rendering import compile_template, make_context, render_many, render_one
from tests.correspondence.docx_factory import make_docx, png

N_BASELINE = 60
N_ONE = 400
N_MANY = 1000
LOGO = png(120, 40, (10, 60, 140))


def _template(logo_tag: str, amounts: str) -> bytes:
    return make_docx(
        [logo_tag,
         "{{ customer.name }}", "{{ address.line1 }}", "{{ address.city }} {{ address.postcode }}",
         "Our reference: {{ letter.reference }}    Date: {{ today_text }}",
         "Dear {{ customer.salutation }} {{ customer.name }},",
         "Re: your {{ product }} account {{ account_number }}",
         "Your balance on {{ statement_date }} is {{ balance }}. The minimum payment of {{ min_payment }} is due "
         "by {{ due_date }}. Interest is charged at {{ interest_rate }} a year.",
         "{%p if overdue %}", "Your account is overdue: please pay now to avoid charges.", "{%p endif %}",
         "Recent transactions:"],
        table=[["Date", "Description", "Amount"], ["{%tr for t in transactions %}", "", ""],
               ["{{ t.date }}", "{{ t.text }}", amounts], ["{%tr endfor %}", "", ""]],
        after_table=["Questions? Call {{ advisor.name }} on {{ advisor.phone }} at our {{ branch }} branch.",
                     "Yours sincerely,", "{{ advisor.name }}", "ACME Bank plc, registered in England"],
        split_runs=True)


OURS = _template("{{ image('logo', width_mm=40) }}", "{{ t.amount|money('GBP') }}")
DOCXTPL = _template("{{ logo }}", "{{ t.amount }}")


def _data(i: int) -> dict:
    return {"address": {"line1": f"{i} High Street", "city": "London", "postcode": "SW1A 1AA"},
            "today_text": "5 March 2024", "product": "Classic Credit Card", "account_number": f"4000-{i:06d}",
            "statement_date": "1 March 2024", "balance": "£1,234.56", "min_payment": "£25.00",
            "due_date": "28 March 2024", "interest_rate": "22.9%", "overdue": i % 3 == 0, "branch": "Leeds",
            "advisor": {"name": "Jo Bloggs", "phone": "0113 496 0000"},
            "transactions": [{"date": f"0{d}/02/2024", "text": f"Purchase {d}", "amount": Decimal(f"{d}9.99")}
                             for d in range(1, 6)]}


def _context(i: int) -> dict:
    return make_context(_data(i), customer={"name": f"Ann Customer {i}", "salutation": "Ms", "locale": "en-GB"},
                        letter={"id": i, "reference": f"L-{i:06d}"})


@pytest.fixture(scope="module")
def docxtpl_rate() -> float:
    """Letters/s of docxtpl with a fresh DocxTemplate per letter (sandboxed, autoescaped), saved to bytes."""
    env = ImmutableSandboxedEnvironment(autoescape=True)
    start = time.perf_counter()
    for i in range(N_BASELINE):
        tpl = DocxTemplate(io.BytesIO(DOCXTPL))
        tpl.render({**_context(i), "logo": InlineImage(tpl, io.BytesIO(LOGO), width=Mm(40))}, env)
        tpl.save(io.BytesIO())
    return N_BASELINE / (time.perf_counter() - start)


def _report(name: str, n: int, seconds: float, baseline: float, target: float) -> float:
    rate = n / seconds
    print(f"\n{name}: {rate:.0f} letters/s ({n} letters in {seconds:.2f} s); docxtpl, fresh template per letter: "
          f"{baseline:.0f}/s; ratio {rate / baseline:.1f}; target {target:.0f}/s")
    return rate


def test_render_one_with_a_cached_compiled_template(docxtpl_rate: float) -> None:
    compiled = compile_template(io.BytesIO(OURS), blocks={}, images={"logo": LOGO})
    contexts = [_context(i) for i in range(N_ONE)]
    start = time.perf_counter()
    outputs = [render_one(compiled, context) for context in contexts]
    seconds = time.perf_counter() - start
    doc = Document(io.BytesIO(outputs[7]))
    assert "Dear Ms Ann Customer 7," in [p.text for p in doc.paragraphs] and len(doc.tables[0].rows) == 6
    rate = _report("render_one (cached compiled template)", N_ONE, seconds, docxtpl_rate, 100)
    assert rate >= 100, f"render_one {rate:.0f}/s is under the 100/s target"


def test_render_many_one_docx_for_a_thousand_letters(docxtpl_rate: float) -> None:
    compiled = compile_template(io.BytesIO(OURS), blocks={}, images={"logo": LOGO})
    contexts = [_context(i) for i in range(N_MANY)]
    start = time.perf_counter()
    batch = render_many(compiled, contexts)
    seconds = time.perf_counter() - start
    assert len(batch.letters) == N_MANY
    assert len(Document(io.BytesIO(batch.docx)).sections) == N_MANY
    print(f"\nbatch DOCX: {len(batch.docx) / 1024:.0f} KiB")
    rate = _report("render_many (1,000 letters, one DOCX)", N_MANY, seconds, docxtpl_rate, 2000)
    assert rate >= 2000, f"render_many {rate:.0f}/s is under the 2,000/s target"
