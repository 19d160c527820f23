"""The production report through the HTTP API on SQLite and PostgreSQL, over letters composed by LibreOffice and
dispatched for real (aiosmtpd; print fails for want of a printer): groups, pages and sheets, failures with their
reasons, the period, CSV, and who may read it."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from sqlalchemy import update

from output import service as output
from output.models import DELIVERED, SENT, Dispatch, Letter
from repository.config import get_settings
from repository.db import transaction
from tests.api.helpers import assert_problem
from tests.output.letters_support import BODY, approved_template, customer, smtp, uno_pool  # noqa: F401

pytestmark = [pytest.mark.usefixtures("uno_pool"), pytest.mark.libreoffice, pytest.mark.smtp]

REPORT = "/api/v1/reports/production"
NOTICE = BODY[:1] + [f"Paragraph {i}: " + "The quick brown fox jumps over the lazy dog. " * 25 for i in range(12)]


@pytest.fixture
def people(client, make_user):  # noqa: ANN001, ANN201
    """Staff in every role the report cares about."""
    return {"author": make_user("alice", "author"), "approver": make_user("bob", "approver"),
            "admin": make_user("root", "admin"), "auditor": make_user("audrey", "auditor"),
            "helpdesk": make_user("harry", "helpdesk")}


@pytest.fixture
def letters(people, smtp, monkeypatch) -> dict[str, Letter]:  # noqa: ANN001, F811
    """Three print letters (one of several pages) whose print fails (no printer), and an email letter that
    bounced and fell back to print."""
    monkeypatch.delenv("POSTROOM_IPP_PRINTER_URI", raising=False)
    monkeypatch.setenv("POSTROOM_PRINT_DUPLEX", "true")
    get_settings.cache_clear()
    approved_template(people["author"], people["approver"])
    approved_template(people["author"], people["approver"], name="notice", category="notice", body=NOTICE)
    paper = customer(people["admin"], "C-1")
    mail = customer(people["admin"], "C-2", email="c2@example.com", channel_preferences={"statement": "email"})
    made = {}
    for key, template, customer_id in [("a", "statement", paper), ("b", "statement", paper), ("long", "notice", paper),
                                       ("mail", "statement", mail)]:
        with transaction() as s:
            letter = output.create_letter(s, actor=people["author"].user, template=template, customer_id=customer_id,
                                          data={"balance": 1})
            s.flush()
            s.expunge(letter)
        made[key] = letter
    assert made["long"].pages > 2 and made["a"].pages == 1
    assert output.dispatch_due(limit=20) == 4
    with transaction() as s:
        output.record_bounce(s, letter_id=made["mail"].id, detail="5.1.1 mailbox unknown")
    return made


def _get(client, account, **params):  # noqa: ANN001, ANN003, ANN202
    return client.get(REPORT, params=params, headers=account.headers)


def test_letters_pages_and_sheets_by_template_channel_and_state(client, people, letters, monkeypatch) -> None:  # noqa: ANN001
    pages = letters["long"].pages
    response = _get(client, people["auditor"])
    assert response.status_code == 200, response.text
    report = response.json()
    groups = [(g["template"], g["channel"], g["status"], g["letters"], g["pages"], g["sheets"])
              for g in report["groups"]]
    assert groups == [("notice", "print", "failed", 1, pages, (pages + 1) // 2),
                      ("statement", "email", "bounced", 1, 1, 0),  # sheets are paper: print rows only
                      ("statement", "print", "failed", 2, 2, 2),
                      ("statement", "print", "queued", 1, 1, 1)]  # the bounced email's fallback
    assert report["duplex"] is True
    assert report["totals"] == {"letters": 4, "pages": 3 + pages, "sheets": 0}  # no paper printed yet
    failures = report["failures"]
    assert failures["total"] == 4
    reasons = sorted((f["channel"], f["status"], f["reason"]) for f in failures["items"])
    assert reasons[0] == ("email", "bounced", "5.1.1 mailbox unknown")
    assert all(r[:2] == ("print", "failed") and "POSTROOM_IPP_PRINTER_URI" in r[2] for r in reasons[1:])
    capped = _get(client, people["auditor"], failures_limit=2).json()["failures"]
    assert (capped["total"], len(capped["items"])) == (4, 2)
    with transaction() as s:  # the printer took letter a; the long notice was printed and delivered
        s.execute(update(Dispatch).where(Dispatch.letter_id == letters["a"].id, Dispatch.channel == "print")
                  .values(state=SENT))
        s.execute(update(Dispatch).where(Dispatch.letter_id == letters["long"].id, Dispatch.channel == "print")
                  .values(state=DELIVERED))
    printed = _get(client, people["auditor"]).json()
    assert printed["totals"]["sheets"] == 1 + (pages + 1) // 2  # the failed and queued rows are not paper
    assert ("statement", "print", "failed", 1, 1, 1) in [
        (g["template"], g["channel"], g["status"], g["letters"], g["pages"], g["sheets"]) for g in printed["groups"]]
    monkeypatch.setenv("POSTROOM_PRINT_DUPLEX", "false")
    get_settings.cache_clear()
    simplex = _get(client, people["auditor"]).json()
    assert simplex["duplex"] is False and simplex["totals"]["sheets"] == 1 + pages


def test_the_period_is_from_inclusive_to_exclusive_over_created_at(client, people, letters) -> None:  # noqa: ANN001
    with transaction() as s:  # the long letter was made on 10 January 2026
        s.execute(update(Letter).where(Letter.id == letters["long"].id).values(
            created_at=dt.datetime(2026, 1, 10, tzinfo=dt.UTC)))
    admin = people["admin"]

    def totals(**params: str) -> dict:
        response = _get(client, admin, **params)
        assert response.status_code == 200, response.text
        return response.json()["totals"]

    pages = letters["long"].pages
    assert totals(**{"from": "2026-01-10", "to": "2026-01-11"})["letters"] == 1
    assert totals(**{"from": "2026-01-09", "to": "2026-01-10"})["letters"] == 0  # `to` is exclusive
    assert totals(**{"from": "2026-01-09", "to": "2026-01-10T00:00:00.000001Z"})["pages"] == pages
    assert totals(**{"from": "2026-01-10T01:00:00+02:00", "to": "2026-01-11"})["letters"] == 1  # 23:00 UTC before
    assert totals()["letters"] == 3  # by default the last 30 days
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    assert totals(**{"from": "2026-01-01", "to": tomorrow}) == {"letters": 4, "pages": 3 + pages, "sheets": 0}
    assert_problem(_get(client, admin, **{"from": "2026-01-11", "to": "2026-01-10"}), 422, "after")
    for bad in ["yesterday", "2026-02-30", "2026-01-10T25:00"]:
        assert_problem(_get(client, admin, **{"from": bad}), 422, "ISO date")
    assert_problem(_get(client, admin, format="xml"), 422)
    assert_problem(_get(client, admin, failures_limit="-1"), 422)


def test_the_groups_as_csv(client, people, letters) -> None:  # noqa: ANN001
    response = _get(client, people["author"], format="csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="production-')
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["template", "channel", "status", "letters", "pages", "sheets"]
    assert rows[1:] == [[g["template"], g["channel"], g["status"], str(g["letters"]), str(g["pages"]),
                         str(g["sheets"])] for g in _get(client, people["author"]).json()["groups"]]
    assert len(rows) == 5


def test_only_admins_auditors_and_authors_may_read_it(client, people) -> None:  # noqa: ANN001
    for role in ("admin", "auditor", "author"):
        assert _get(client, people[role]).status_code == 200, role
    assert_problem(_get(client, people["helpdesk"]), 403, "auditor")
    assert_problem(_get(client, people["approver"], **{"from": "not a date"}), 403)  # no hint from the parameters
    assert client.get(REPORT).status_code == 401
