"""Print house runs on SQLite and PostgreSQL, with letters composed by a real LibreOffice: presort, one merged
PDF whose QR codes decode (pypdfium2 renders, zxing-cpp reads), the manifest, the inserter's results (delivered,
damaged and reprinted once), all-or-nothing result files, a ledger row never in two runs, the daily run, and
admin-only access in pairs."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import subprocess
import sys

import docx
import pikepdf
import pypdfium2
import pytest
import zxingcpp
from sqlalchemy import func, select

from correspondence import service as corr
from output import service as output
from output.models import Dispatch, Letter, PrintPiece, PrintRun
from output.service import print_house
from output.service.print_house import layout
from repository.config import get_settings
from repository.db import get_engine, transaction
from repository.models import Document
from tests.api.helpers import assert_problem
from tests.correspondence.docx_factory import make_docx
from tests.output.letters_support import BODY, SCHEMA, approved_template, customer, uno_pool  # noqa: F401
from tests.repository.helpers import staged

pytestmark = [pytest.mark.usefixtures("uno_pool", "house"), pytest.mark.libreoffice]

API = "/api/v1/print-runs"


@pytest.fixture
def house(monkeypatch) -> None:  # noqa: ANN001
    """Print rows go to the print house (duplex, the default)."""
    monkeypatch.setenv("POSTROOM_PRINT_ROUTE", "house")
    get_settings.cache_clear()


@pytest.fixture
def people(client, make_user):  # noqa: ANN001, ANN201
    """An admin, an author, an approver and a help-desk user."""
    return {"admin": make_user("root", "admin"), "author": make_user("alice", "author"),
            "approver": make_user("bob", "approver"), "helpdesk": make_user("harry", "helpdesk")}


@pytest.fixture
def template(people) -> str:  # noqa: ANN001
    """An approved one-page `statement` template."""
    return approved_template(people["author"], people["approver"])


@pytest.fixture
def long_template(people) -> str:  # noqa: ANN001
    """An approved `terms` template whose letters run to three pages (page breaks, so fonts do not matter)."""
    document = docx.Document(io.BytesIO(make_docx(BODY)))
    for page in (2, 3):
        document.add_page_break()
        document.add_paragraph(f"Terms of this account, page {page}.")
    body = io.BytesIO()
    document.save(body)
    with transaction() as s:
        template_id = corr.create_template(
            s, actor=people["author"].user, kind="template", name="terms", locale="en-GB", category="statement",
            content=staged(body.getvalue(), "terms.docx"), schema=SCHEMA, sample_data={"balance": 1}).id
    with transaction() as s:
        corr.submit(s, actor=people["author"].user, template_id=template_id)
    with transaction() as s:
        corr.approve(s, actor=people["approver"].user, template_id=template_id)
    return template_id


def _letter(people, ref: str, template: str = "statement", **address) -> Letter:  # noqa: ANN001, ANN003
    customer_id = customer(people["admin"], ref, name=f"Customer {ref}", **address)
    with transaction() as s:
        letter = output.create_letter(s, actor=people["author"].user, template=template, customer_id=customer_id,
                                      data={"balance": 42})
        s.flush()
        s.expunge(letter)
    return letter


def _row(letter_id: str) -> Dispatch:
    with transaction(readonly=True) as s:
        return s.execute(select(Dispatch).where(Dispatch.letter_id == letter_id)).scalar_one()


def _events(letter_id: str) -> list[tuple[str, str]]:
    with transaction(readonly=True) as s:
        return [(e.kind, e.detail) for e in output.ledger(s, letter_id=letter_id)[1]]


def _status(letter_id: str) -> str:
    with transaction(readonly=True) as s:
        return s.get(Letter, letter_id).status


def _manifest(client, admin, run_id: str) -> list[dict[str, str]]:  # noqa: ANN001
    response = client.get(f"{API}/{run_id}/manifest", headers=admin.headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))


def _codes(pdf: bytes, page: int) -> list[str]:
    """The QR codes found on a page (1-based) of the PDF, rendered at 150 dpi."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        image = document[page - 1].render(scale=150 / 72).to_pil()
    finally:
        document.close()
    return [r.text for r in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]


def _results(client, admin, run_id: str, text: str | bytes):  # noqa: ANN001, ANN202
    data = text.encode() if isinstance(text, str) else text
    return client.post(f"{API}/{run_id}/results", files={"file": ("results.csv", data, "text/csv")},
                       headers=admin.headers)


def _run(client, admin, key: str | None = None) -> dict:  # noqa: ANN001
    response = client.post(API, headers={**admin.headers, **({"Idempotency-Key": key} if key else {})})
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"{API}/{response.json()['id']}"
    return response.json()


def test_a_run_presorts_merges_stamps_and_marks_the_letters_sent(client, people, template,  # noqa: ANN001
                                                                   long_template, monkeypatch) -> None:
    monkeypatch.setattr(layout, "CHUNK", 3)  # two chunks joined into the one file
    admin = people["admin"]
    sw1 = _letter(people, "C-1", postcode="SW1A 1AA", country="GB")
    berlin = _letter(people, "C-2", postcode="10115", country="DE")
    ec1 = _letter(people, "C-3", "terms", postcode="EC1A 1BB", country="GB")
    sw1_again = _letter(people, "C-4", postcode="sw1a1aa", country="GB")
    assert ec1.pages == 3
    assert output.dispatch_due() == 0  # the dispatcher leaves print rows to the print run
    assert _row(sw1.id).state == "queued"

    run = _run(client, admin, key="run-1")
    assert (run["pieces"], run["sheets"], run["pages"], run["status"]) == (4, 5, 10, "awaiting_results")
    replayed = client.post(API, headers={**admin.headers, "Idempotency-Key": "run-1"})
    assert replayed.json() == run and replayed.headers["Idempotent-Replayed"] == "true"
    same_postcode = sorted([sw1, sw1_again], key=lambda letter: letter.reference)
    order = [berlin, ec1, *same_postcode]
    rows = _manifest(client, admin, run["id"])
    assert [r["letter_id"] for r in rows] == [letter.id for letter in order]
    assert [r["piece_seq"] for r in rows] == ["1", "2", "3", "4"]
    assert [(r["pages"], r["sheets"], r["first_page"]) for r in rows] == [
        ("1", "1", "1"), ("3", "2", "3"), ("1", "1", "7"), ("1", "1", "9")]
    assert rows[0]["customer_ref"] == "C-2" and rows[0]["name"] == "Customer C-2"
    assert (rows[0]["postcode"], rows[0]["country"], rows[0]["address"]) == ("10115", "DE", "1 High Street, London")
    assert {r["run_id"] for r in rows} == {run["id"]} and {r["reprint_of"] for r in rows} == {""}

    pdf = client.get(f"{API}/{run['id']}/file", headers=admin.headers)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    with pikepdf.open(io.BytesIO(pdf.content)) as merged:
        assert len(merged.pages) == 10  # every piece starts on a sheet of its own: blank backs after odd pages
    assert _codes(pdf.content, 1) == [f"{berlin.id}|1|1/1"]
    assert _codes(pdf.content, 2) == []  # a blank back
    assert _codes(pdf.content, 3) == [f"{ec1.id}|2|1/2"]
    assert _codes(pdf.content, 5) == [f"{ec1.id}|2|2/2"]
    assert _codes(pdf.content, 9) == [f"{same_postcode[1].id}|4|1/1"]

    for seq, letter in enumerate(order, 1):
        row = _row(letter.id)
        assert (row.state, row.provider_ref) == ("sent", f"{run['id']}:{seq}")
        assert _events(letter.id)[-1] == ("sent", f"print run {run['id']}, piece {seq}")
        assert _status(letter.id) == "dispatching"  # until the inserter says delivered
    listed = client.get(API, headers=admin.headers).json()
    assert [r["id"] for r in listed] == [run["id"]]
    assert client.get(f"{API}/{run['id']}", headers=admin.headers).json()["awaiting_results"] == 4
    assert_problem(client.post(API, headers=admin.headers), 409, "nothing to print")


def test_simplex_puts_one_page_on_each_sheet_and_stamps_every_sheet(client, people, long_template,  # noqa: ANN001
                                                                    monkeypatch) -> None:
    monkeypatch.setenv("POSTROOM_PRINT_DUPLEX", "false")
    get_settings.cache_clear()
    letter = _letter(people, "C-1", "terms")
    run = _run(client, people["admin"])
    assert (run["pages"], run["sheets"], run["duplex"]) == (3, 3, False)
    pdf = client.get(f"{API}/{run['id']}/file", headers=people["admin"].headers).content
    assert [_codes(pdf, page) for page in (1, 2, 3)] == [[f"{letter.id}|1|{i}/3"] for i in (1, 2, 3)]


def test_results_deliver_and_damage_and_a_damaged_piece_is_reprinted_once(client, people, template) -> None:  # noqa: ANN001
    admin = people["admin"]
    first = _letter(people, "C-1", postcode="AB1 1AA")
    second = _letter(people, "C-2", postcode="ZZ9 9ZZ")
    run1 = _run(client, admin)
    answer = _results(client, admin, run1["id"], f"piece_seq,letter_id,status,note\n1,,delivered,\n"
                                                 f",{second.id},damaged,torn in the folder\n")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"run_id": run1["id"], "delivered": 1, "damaged": 1, "unchanged": 0}
    row = _row(first.id)
    assert row.state == "delivered" and row.delivered_at is not None
    assert _status(first.id) == "done"
    assert _row(second.id).state == "sent" and _status(second.id) == "dispatching"
    assert _events(second.id)[-1] == ("damaged", f"print run {run1['id']}, piece 2: damaged at the inserter; "
                                                 "printed again in the next run (torn in the folder)")
    detail = client.get(f"{API}/{run1['id']}", headers=admin.headers).json()
    assert (detail["status"], detail["delivered"], detail["damaged"], detail["awaiting_results"]) == (
        "completed", 1, 1, 0)

    third = _letter(people, "C-3", postcode="M1 1AE")
    run2 = _run(client, admin)
    rows = _manifest(client, admin, run2["id"])
    assert [(r["letter_id"], r["reprint_of"]) for r in rows] == [(third.id, ""), (second.id, f"{run1['id']}:2")]
    assert _row(second.id).provider_ref == f"{run2['id']}:2"
    with transaction(readonly=True) as s:
        reprint = s.execute(select(PrintPiece).where(PrintPiece.run_id == run2["id"], PrintPiece.seq == 2)).scalar_one()
        damaged = s.execute(select(PrintPiece).where(PrintPiece.run_id == run1["id"], PrintPiece.seq == 2)).scalar_one()
    assert reprint.reprint_of == damaged.id and damaged.status == "damaged"
    assert_problem(client.post(API, headers=admin.headers), 409, "nothing to print")  # reprinted once only

    again = _results(client, admin, run1["id"], "seq,status\n1,delivered\n2,damaged\n")  # the same results again
    assert again.json() == {"run_id": run1["id"], "delivered": 0, "damaged": 0, "unchanged": 2}
    body = assert_problem(_results(client, admin, run1["id"], "seq,status\n2,delivered\n"), 409, "line 2",
                          "already recorded damaged")
    assert body["piece_seq"] == 2
    delivered = _results(client, admin, run2["id"], f"letter_id,status\n{second.id},delivered\n")
    assert delivered.json()["delivered"] == 1 and _status(second.id) == "done"


def test_a_bad_result_file_is_a_422_naming_the_line_and_applies_nothing(client, people, template) -> None:  # noqa: ANN001
    admin = people["admin"]
    letters = [_letter(people, "C-1"), _letter(people, "C-2")]
    run = _run(client, admin)
    second = _manifest(client, admin, run["id"])[1]["letter_id"]
    bad = [
        ("seq,status\n1,delivered\n2,lost\n", "line 3", "must be delivered or damaged"),
        ("seq,status\n1,delivered\n99,damaged\n", "line 3", "no piece 99"),
        ("letter_id,status\n00000000-0000-0000-0000-000000000000,delivered\n", "line 2", "is not in print run"),
        ("seq,status\n1,delivered\n1,damaged\n", "line 3", "already given on line 2"),
        (f"seq,letter_id,status\n1,{second},delivered\n", "line 2", f"not {second}"),
        ("seq,status\n1,delivered\nx,delivered\n", "line 3", "not a piece number"),
        ("1,delivered\n", "line 1", "header"),
        ("", "line 1", "empty"),
        (b"seq,status\n1,delivered\n2,damaged,\xff\n", "line 3", "utf-8"),
    ]
    for text, *words in bad:
        body = assert_problem(_results(client, admin, run["id"], text), 422, *words, "nothing was applied")
        assert body["errors"][0]["line"] == int(words[0].split()[1])
    body = assert_problem(_results(client, admin, run["id"], "seq,status\n1,lost\n2,gone\n"), 422, "1 more")
    assert [e["line"] for e in body["errors"]] == [2, 3]
    for letter in letters:
        assert _row(letter.id).state == "sent" and _events(letter.id)[-1][0] == "sent"
    with transaction(readonly=True) as s:
        assert set(s.execute(select(PrintPiece.status)).scalars()) == {"printed"}
    assert client.get(f"{API}/{run['id']}", headers=admin.headers).json()["awaiting_results"] == 2
    assert_problem(_results(client, admin, "no-such-run", "seq,status\n1,delivered\n"), 404)


def test_a_ledger_row_is_never_in_two_runs(client, people, template) -> None:  # noqa: ANN001
    admin = people["admin"].user
    letter = _letter(people, "C-1")
    now = dt.datetime.now(dt.UTC)
    built = []
    for _ in range(2):  # two runs planned and built from the same queue at once
        with transaction(readonly=True) as s:
            built.append(print_house.build_run(s, plan=print_house.plan_run(s, actor=admin, now=now)))
    with transaction() as s:
        first = print_house.record_run(s, actor=admin, built=built[0]).id
    with pytest.raises(print_house.PrintRunConflictError), transaction() as s:
        print_house.record_run(s, actor=admin, built=built[1])
    for b in built:
        b.release()
    with transaction(readonly=True) as s:
        assert list(s.execute(select(PrintRun.id)).scalars()) == [first]
        assert s.execute(select(func.count()).select_from(PrintPiece)).scalar_one() == 1
        assert s.execute(select(func.count()).select_from(Document).where(
            Document.title.like("Print run%"))).scalar_one() == 2  # the first run's PDF and manifest only
    assert _row(letter.id).provider_ref == f"{first}:1"


def test_the_daily_run_is_made_once_at_its_time(client, people, template, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("POSTROOM_PRINT_RUN_AT", "18:00")
    monkeypatch.setenv("POSTROOM_PRINT_RUN_AS", "nobody")
    get_settings.cache_clear()
    settings = get_settings()
    day = dt.datetime(2031, 3, 4, tzinfo=dt.UTC)
    letter = _letter(people, "C-1")

    def at(hour: int, minute: int, days: int = 0) -> int:
        return print_house.run_scheduled(get_engine(), settings=settings,
                                         now=day + dt.timedelta(days=days, hours=hour, minutes=minute))

    assert at(18, 0) == 0  # no such user to make it
    monkeypatch.setenv("POSTROOM_PRINT_RUN_AS", "root")
    get_settings.cache_clear()
    settings = get_settings()
    assert at(17, 59) == 0 and _row(letter.id).state == "queued"
    assert at(18, 0) == 1
    later = _letter(people, "C-2")
    assert at(18, 1) == 0 and at(23, 59) == 0  # one scheduled run a day
    assert _row(later.id).state == "queued"
    assert at(18, 0, days=1) == 1 and _row(later.id).state == "sent"
    with transaction(readonly=True) as s:
        days = sorted(s.execute(select(PrintRun.scheduled_on)).scalars())
        assert days == [dt.date(2031, 3, 4), dt.date(2031, 3, 5)]


def test_print_runs_are_for_admins_only(client, people, template) -> None:  # noqa: ANN001
    _letter(people, "C-1")
    for other in (people["helpdesk"], people["author"]):
        assert_problem(client.post(API, headers=other.headers), 404)
        assert_problem(client.get(API, headers=other.headers), 404)
    run = _run(client, people["admin"])
    for other in (people["helpdesk"], people["author"]):
        for path in ("", "/file", "/manifest"):
            assert_problem(client.get(f"{API}/{run['id']}{path}", headers=other.headers), 404)
        assert_problem(_results(client, other, run["id"], "seq,status\n1,delivered\n"), 404)
        assert_problem(client.get(f"/api/v1/documents/{run['file_document_id']}/content", headers=other.headers),
                       404)
    admin = people["admin"]
    assert client.get(f"{API}/{run['id']}/file", headers=admin.headers).status_code == 200
    assert client.get(f"/api/v1/documents/{run['manifest_document_id']}/content",
                      headers=admin.headers).status_code == 200
    assert _results(client, admin, run["id"], "seq,status\n1,delivered\n").status_code == 200


def test_the_cli_makes_a_run_and_imports_results(client, people, template, tmp_path) -> None:  # noqa: ANN001
    letter = _letter(people, "C-1")

    def postroom(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "api.cli", *args, "--as", "root"], env=dict(os.environ),
                              capture_output=True, text=True, timeout=120)

    made = postroom("print-run", "create")
    assert made.returncode == 0, made.stderr
    run_id, pieces = made.stdout.split("\t")[:2]
    assert pieces == "1 pieces" and _row(letter.id).provider_ref == f"{run_id}:1"
    nothing = postroom("print-run", "create")
    assert nothing.returncode == 3 and "nothing to print" in nothing.stderr
    results = tmp_path / "results.csv"
    results.write_text("seq,status\n1,lost\n")
    refused = postroom("print-run", "import-results", run_id, str(results))
    assert refused.returncode == 1 and "line 2" in refused.stderr and _row(letter.id).state == "sent"
    results.write_text("seq,status\n1,delivered\n")
    applied = postroom("print-run", "import-results", run_id, str(results))
    assert applied.returncode == 0, applied.stderr
    assert _row(letter.id).state == "delivered"
