"""Letters through the HTTP API on SQLite and PostgreSQL: create (with Idempotency-Key), read with the ledger,
the archived PDF byte for byte, permissions in pairs, and the tracking pixel and click redirect."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from output import service as output
from output.models import Letter
from repository.config import get_settings
from repository.db import transaction
from repository.models import DocumentType
from tests.api.helpers import assert_problem
from tests.output.letters_support import approved_template, customer, smtp, uno_pool  # noqa: F401

pytestmark = [pytest.mark.usefixtures("uno_pool"), pytest.mark.libreoffice]

API = "/api/v1/letters"


@pytest.fixture
def people(client, make_user):  # noqa: ANN001, ANN201
    """An author, an approver, an admin, a help-desk user and a records manager."""
    return {"author": make_user("alice", "author"), "approver": make_user("bob", "approver"),
            "admin": make_user("root", "admin"), "helpdesk": make_user("harry", "helpdesk"),
            "records": make_user("rita", "records_manager")}


@pytest.fixture
def template(people) -> str:  # noqa: ANN001
    """An approved `statement` template."""
    return approved_template(people["author"], people["approver"])


def _post(client, account, customer_id: str, key: str | None = None, **extra):  # noqa: ANN001, ANN003, ANN202
    headers = {**account.headers, **({"Idempotency-Key": key} if key else {})}
    body = {"template": "statement", "customer_id": customer_id, "data": {"balance": 42}, **extra}
    return client.post(API, json=body, headers=headers)


def _count() -> int:
    with transaction(readonly=True) as s:
        return s.execute(select(func.count()).select_from(Letter)).scalar_one()


def test_a_letter_is_created_read_and_its_pdf_is_the_archived_document(client, people, template) -> None:  # noqa: ANN001
    customer_id = customer(people["admin"], "C-1")
    response = _post(client, people["author"], customer_id)
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["Location"] == f"{API}/{body['id']}"
    assert (body["status"], body["template_version"], body["reference"][:2]) == ("composed", "1.0", "L-")
    assert [(c["channel"], c["state"]) for c in body["channels"]] == [("print", "queued")]
    read = client.get(f"{API}/{body['id']}", headers=people["helpdesk"].headers)
    assert read.status_code == 200 and read.json()["document_id"] == body["document_id"]
    assert [(e["channel"], e["kind"]) for e in read.json()["events"]] == [("print", "queued")]
    pdf = client.get(f"{API}/{body['id']}/pdf", headers=people["helpdesk"].headers)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    archived = client.get(f"/api/v1/documents/{body['document_id']}/content", headers=people["helpdesk"].headers)
    assert pdf.content == archived.content and pdf.content.startswith(b"%PDF-")
    document = client.get(f"/api/v1/documents/{body['document_id']}", headers=people["helpdesk"].headers).json()
    assert document["metadata"]["data_sha256"] == read.json()["data_sha256"]
    assert document["metadata"]["template_version"] == "1.0"


def test_an_idempotency_key_replays_the_first_answer(client, people, template) -> None:  # noqa: ANN001
    customer_id = customer(people["admin"], "C-1")
    first = _post(client, people["author"], customer_id, key="letter-1")
    again = _post(client, people["author"], customer_id, key="letter-1")
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert _count() == 1
    assert_problem(_post(client, people["author"], customer_id, key="letter-1", category="marketing"), 409)
    assert _count() == 1


def test_creating_letters_needs_write_access_to_letters(client, people, template) -> None:  # noqa: ANN001
    customer_id = customer(people["admin"], "C-1")
    assert_problem(_post(client, people["helpdesk"], customer_id), 403)
    assert _post(client, people["author"], customer_id).status_code == 201


def test_reading_a_letter_needs_read_access_to_letters(client, people, template) -> None:  # noqa: ANN001
    letter = _post(client, people["author"], customer(people["admin"], "C-1")).json()
    with transaction() as s:  # letters readable by the help desk and authors only
        s.execute(select(DocumentType).where(DocumentType.name == "letter")).scalar_one().read_roles = [
            "author", "helpdesk"]
    assert_problem(client.get(f"{API}/{letter['id']}", headers=people["records"].headers), 404)
    assert_problem(client.get(f"{API}/{letter['id']}/pdf", headers=people["records"].headers), 404)
    assert client.get(f"{API}/{letter['id']}", headers=people["helpdesk"].headers).status_code == 200
    assert client.get(f"{API}/{letter['id']}/pdf", headers=people["helpdesk"].headers).status_code == 200
    assert_problem(client.get(f"{API}/no-such-letter", headers=people["helpdesk"].headers), 404)


def test_bad_input_is_a_422_naming_the_problem(client, people, template) -> None:  # noqa: ANN001
    customer_id = customer(people["admin"], "C-1")
    assert_problem(_post(client, people["author"], "no-such-customer"), 422, "customer")
    bad = client.post(API, json={"template": "statement", "customer_id": customer_id, "data": {"balance": "x"}},
                      headers=people["author"].headers)
    assert_problem(bad, 422, "balance")
    assert_problem(_post(client, people["author"], customer_id, channel="pigeon"), 422, "pigeon")
    assert_problem(_post(client, people["author"], customer_id, channel="email"), 422, "email address")
    assert _count() == 0


@pytest.mark.smtp
def test_the_ledger_shows_what_the_dispatcher_did(client, people, template, smtp) -> None:  # noqa: ANN001, F811
    customer_id = customer(people["admin"], "C-1", email="ada@example.com")
    letter = _post(client, people["author"], customer_id, channel="email").json()
    output.dispatch_due()
    body = client.get(f"{API}/{letter['id']}", headers=people["helpdesk"].headers).json()
    assert body["status"] == "done"
    assert [(c["channel"], c["state"], c["attempts"]) for c in body["channels"]] == [("email", "sent", 1)]
    assert [e["kind"] for e in body["events"]] == ["queued", "sent"]
    assert len(smtp.messages) == 1


@pytest.mark.smtp
def test_the_app_dispatches_letters_on_its_own_thread(people, template, smtp, monkeypatch) -> None:  # noqa: ANN001, F811
    from fastapi.testclient import TestClient

    from api.app import create_app

    monkeypatch.setenv("POSTROOM_DISPATCH_POLL_SECONDS", "0.1")
    get_settings.cache_clear()
    customer_id = customer(people["admin"], "C-1", email="ada@example.com")
    with TestClient(create_app(run_worker_thread=True)) as running:
        letter = _post(running, people["author"], customer_id, channel="email").json()
        deadline, state = time.monotonic() + 30, "queued"
        while time.monotonic() < deadline and state != "sent":
            time.sleep(0.1)
            state = running.get(f"{API}/{letter['id']}", headers=people["author"].headers).json()["channels"][0][
                "state"]
    assert state == "sent" and len(smtp.messages) == 1


def test_the_open_pixel_and_signed_click_redirect_record_events(client, people, template, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("POSTROOM_TRACKING_SECRET", "s3cret-for-tests")
    get_settings.cache_clear()
    customer_id = customer(people["admin"], "C-1", email="ada@example.com")
    letter = _post(client, people["author"], customer_id, channel="email").json()
    settings = get_settings()
    pixel = urlsplit(output.open_pixel_url(settings, letter["id"], "email"))
    for _ in range(2):
        seen = client.get(pixel.path)
        assert seen.status_code == 200 and seen.headers["content-type"] == "image/gif"
    target = output.portal_url(settings, letter["id"])
    click = urlsplit(output.click_url(settings, letter["id"], "email", target))
    went = client.get(f"{click.path}?{click.query}", follow_redirects=False)
    assert went.status_code == 302 and went.headers["Location"] == target
    assert client.get(f"{click.path}?u=https://evil.example/", follow_redirects=False).status_code == 404
    assert client.get(pixel.path.replace("/t/o/", "/t/o/x"), follow_redirects=False).status_code == 404
    events = client.get(f"{API}/{letter['id']}", headers=people["helpdesk"].headers).json()["events"]
    assert [e["kind"] for e in events] == ["queued", "opened", "clicked"]  # one open, however often it loads
    assert events[2]["detail"] == target
