"""Letter batches through the HTTP API on SQLite and PostgreSQL: a JSON array or an uploaded CSV in (202),
progress and per-row errors out, Idempotency-Key, cancelling, bad input as problem details, permissions in
pairs. The letters are made by the real batch runner on a real LibreOffice."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from output.models import Letter, LetterBatch
from output.service import batches
from repository.db import transaction
from tests.api.helpers import assert_problem
from tests.output.letters_support import approved_template, customer, uno_pool  # noqa: F401

pytestmark = [pytest.mark.usefixtures("uno_pool"), pytest.mark.libreoffice]

API = "/api/v1/batches"


@pytest.fixture
def people(client, make_user):  # noqa: ANN001, ANN201
    """An author, an approver, an admin and a help-desk user."""
    return {"author": make_user("alice", "author"), "approver": make_user("bob", "approver"),
            "admin": make_user("root", "admin"), "helpdesk": make_user("harry", "helpdesk")}


@pytest.fixture
def template(people) -> str:  # noqa: ANN001
    """An approved `statement` template (data: a numeric balance)."""
    return approved_template(people["author"], people["approver"])


def _run(batch_id: str) -> batches.Progress:
    owner = batches.new_owner()
    assert batches.claim_next(None, owner=owner, batch_id=batch_id) == batch_id
    return batches.BatchRunner(batch_id, owner=owner).run()


def _count(model) -> int:  # noqa: ANN001
    with transaction(readonly=True) as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def test_a_json_batch_is_accepted_run_and_reported_with_its_bad_rows(client, people, template) -> None:  # noqa: ANN001
    for i in range(3):
        customer(people["admin"], f"C-{i}")
    rows = [{"customer_ref": f"C-{i}", "data": {"balance": i}} for i in range(3)]
    rows += [{"customer_ref": "C-404", "data": {"balance": 1}}, {"customer_ref": "C-0", "data": {"balance": "x"}},
             {"data": {"balance": 2}}]
    response = client.post(API, json={"template": "statement", "rows": rows}, headers=people["author"].headers)
    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["Location"] == f"{API}/{body['id']}"
    assert (body["status"], body["rows_total"], body["rows_pending"], body["rows_failed"]) == ("queued", 6, 5, 1)
    assert body["template_version"] == "1.0" and list(body["template_versions"].values()) == ["1.0"]
    _run(body["id"])
    done = client.get(f"{API}/{body['id']}", headers=people["author"].headers).json()
    assert (done["status"], done["rows_done"], done["rows_failed"], done["rows_pending"], done["pages"]) == \
        ("completed", 3, 3, 0, 3)
    assert [(e["row"], e["customer_ref"]) for e in done["errors"]] == [(4, "C-404"), (5, "C-0"), (6, None)]
    page = client.get(f"{API}/{body['id']}/errors", params={"after": 4, "limit": 1},
                      headers=people["author"].headers).json()
    assert [e["row"] for e in page] == [5] and "balance" in page[0]["error"]
    with transaction(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(Letter).where(Letter.batch_id == body["id"])) \
            .scalar_one() == 3


def test_an_uploaded_csv_is_one_batch_even_when_the_request_is_retried(client, people, template) -> None:  # noqa: ANN001
    for i in range(2):
        customer(people["admin"], f"K-{i}")
    csv = b"customer_ref,balance\nK-0,10.5\nK-1,20\n"
    headers = {**people["author"].headers, "Idempotency-Key": "batch-2026-11-30"}
    first = client.post(API, files={"file": ("run.csv", csv, "text/csv")}, data={"template": "statement"},
                        headers=headers)
    again = client.post(API, files={"file": ("run.csv", csv, "text/csv")}, data={"template": "statement"},
                        headers=headers)
    assert first.status_code == again.status_code == 202, first.text
    assert first.json()["id"] == again.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert first.json()["source_name"] == "run.csv" and len(first.json()["source_sha256"]) == 64
    assert _count(LetterBatch) == 1
    _run(first.json()["id"])
    with transaction(readonly=True) as s:
        balances = sorted(s.execute(select(Letter.data_sha256)).scalars())
    assert len(balances) == 2
    raw = client.post(API, content=csv, params={"template": "statement"},
                      headers={**people["author"].headers, "Content-Type": "text/csv"})
    assert raw.status_code == 202 and raw.json()["rows_total"] == 2


def test_an_uploaded_json_array_file_is_a_batch_and_a_broken_one_creates_nothing(client, people, template) -> None:  # noqa: ANN001
    customer(people["admin"], "J-0")
    rows = b'[{"customer_ref": "J-0", "balance": 10.5}, {"customer_ref": "J-404", "data": {"balance": 1}}]'
    made = client.post(API, files={"file": ("rows.json", rows, "application/json")}, data={"template": "statement"},
                       headers=people["author"].headers)
    assert made.status_code == 202, made.text
    assert made.json()["rows_total"] == 2
    broken = client.post(API, files={"file": ("rows.json", rows[:-20], "application/json")},
                         data={"template": "statement"}, headers=people["author"].headers)
    assert_problem(broken, 422, "well-formed JSON array", "nothing was read")
    assert _count(LetterBatch) == 1


def test_bad_input_is_a_problem_and_creates_nothing(client, people, template) -> None:  # noqa: ANN001
    headers = people["author"].headers
    assert_problem(client.post(API, json={"template": "statement", "rows": []}, headers=headers), 422)
    assert_problem(client.post(API, json={"template": "no-such-template", "rows": [{"customer_ref": "A"}]},
                               headers=headers), 404)
    assert_problem(client.post(API, json={"template": "statement", "rows": [{"customer_ref": "A"}],
                                          "channel": "pigeon"}, headers=headers), 422)
    assert_problem(client.post(API, content=b"{not json", headers={**headers, "Content-Type": "application/json"}),
                   422)
    assert_problem(client.post(API, content=b"hello", headers={**headers, "Content-Type": "text/plain"}), 415)
    assert_problem(client.post(API, files={"file": ("r.csv", b"name,balance\nA,1\n", "text/csv")},
                               data={"template": "statement"}, headers=headers), 422)
    assert_problem(client.post(API, files={"file": ("r.csv", b"customer_ref\nA\n", "text/csv")}, headers=headers),
                   422)
    assert _count(LetterBatch) == 0


def test_batches_are_seen_by_letter_writers_only_and_cancel_stops_them(client, people, template) -> None:  # noqa: ANN001
    customer(people["admin"], "Z-1")
    rows = [{"customer_ref": "Z-1", "data": {"balance": 1}}]
    denied = client.post(API, json={"template": "statement", "rows": rows}, headers=people["helpdesk"].headers)
    assert_problem(denied, 403)
    batch_id = client.post(API, json={"template": "statement", "rows": rows},
                           headers=people["author"].headers).json()["id"]
    assert_problem(client.get(f"{API}/{batch_id}", headers=people["helpdesk"].headers), 404)
    assert client.get(f"{API}/{batch_id}", headers=people["admin"].headers).status_code == 200
    assert [b["id"] for b in client.get(API, headers=people["admin"].headers).json()] == [batch_id]
    assert client.get(API, headers=people["helpdesk"].headers).json() == []
    assert_problem(client.post(f"{API}/{batch_id}/cancel", headers=people["helpdesk"].headers), 404)
    cancelled = client.post(f"{API}/{batch_id}/cancel", headers=people["author"].headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert_problem(client.post(f"{API}/{batch_id}/cancel", headers=people["author"].headers), 409)
    assert batches.claim_next(None, owner="test", batch_id=batch_id) is None  # nothing left to run
    assert _count(Letter) == 0
