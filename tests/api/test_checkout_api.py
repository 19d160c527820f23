"""Check-out, check-in, cancel and break over HTTP."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from tests.api.helpers import API, DOCS, assert_problem, checkin, create_document, stored_files


@pytest.fixture
def doc_id(client, author) -> str:  # noqa: ANN001
    """A fresh document (version 1.0) written by alice."""
    return create_document(client, author, b"version one")["id"]


@pytest.fixture
def bob(client, make_user):  # noqa: ANN001, ANN201
    """A second author."""
    return make_user("bob", "author")


def _checkout(client, account, doc_id: str):  # noqa: ANN001, ANN202
    return client.post(f"{DOCS}/{doc_id}/checkout", headers=account.headers)


def test_checkout_answers_holder_and_expiry(client, author, doc_id) -> None:
    before = dt.datetime.now(dt.UTC)
    response = _checkout(client, author, doc_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["checked_out_by"] == "alice"
    expires = dt.datetime.fromisoformat(body["expires_at"])
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=dt.UTC)
    assert before + dt.timedelta(hours=7) < expires <= before + dt.timedelta(hours=8, minutes=1)


def test_checked_out_document_shows_its_holder(client, author, doc_id) -> None:
    _checkout(client, author, doc_id)
    assert client.get(f"{DOCS}/{doc_id}", headers=author.headers).json()["checked_out_by"] == "alice"


def test_second_user_checkout_is_409_naming_the_holder(client, author, bob, doc_id) -> None:
    _checkout(client, author, doc_id)
    response = _checkout(client, bob, doc_id)
    body = assert_problem(response, 409, "alice")
    assert body["checked_out_by"] == "alice"
    assert client.get(f"{DOCS}/{doc_id}", headers=bob.headers).json()["checked_out_by"] == "alice"


def test_holder_checking_out_again_keeps_the_lock(client, author, doc_id) -> None:
    _checkout(client, author, doc_id)
    again = _checkout(client, author, doc_id)
    assert again.status_code == 200
    assert again.json()["checked_out_by"] == "alice"


def test_checkin_by_non_holder_is_409_and_adds_no_version(client, author, bob, doc_id) -> None:
    _checkout(client, author, doc_id)
    files_before = stored_files()
    response = checkin(client, bob, doc_id, b"bob's sneaky edit" * 100_000)
    assert_problem(response, 409, "alice")
    assert stored_files() == files_before
    versions = client.get(f"{DOCS}/{doc_id}/versions", headers=author.headers).json()
    assert [v["version"] for v in versions] == ["1.0"]


def test_checkin_without_checkout_is_409(client, author, doc_id) -> None:
    assert_problem(checkin(client, author, doc_id, b"no lock"), 409, "check it out")


def test_checkin_by_holder_makes_minor_version_and_releases_lock(client, author, doc_id) -> None:
    _checkout(client, author, doc_id)
    data = b"version one point one"
    response = checkin(client, author, doc_id, data, comment="typo fixed")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["version"] == "1.1"
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["comment"] == "typo fixed"
    doc = client.get(f"{DOCS}/{doc_id}", headers=author.headers).json()
    assert doc["version"] == "1.1"
    assert doc["checked_out_by"] is None


def test_checkin_with_major_makes_next_major_version(client, author, doc_id) -> None:
    _checkout(client, author, doc_id)
    assert checkin(client, author, doc_id, b"1.1").json()["version"] == "1.1"
    _checkout(client, author, doc_id)
    response = checkin(client, author, doc_id, b"two", major=True)
    assert response.status_code == 201
    assert response.json()["version"] == "2.0"
    content = client.get(f"{DOCS}/{doc_id}/content", headers=author.headers)
    assert content.content == b"two"


def test_checkin_with_bad_major_flag_is_422_and_keeps_the_lock(client, author, doc_id) -> None:
    _checkout(client, author, doc_id)
    response = client.post(f"{DOCS}/{doc_id}/checkin", data={"major": "maybe"},
                           files={"file": ("x.txt", b"x", "text/plain")}, headers=author.headers)
    assert_problem(response, 422, "major")
    assert client.get(f"{DOCS}/{doc_id}", headers=author.headers).json()["checked_out_by"] == "alice"


def test_holder_cancels_checkout_with_204(client, author, bob, doc_id) -> None:
    _checkout(client, author, doc_id)
    response = client.delete(f"{DOCS}/{doc_id}/checkout", headers=author.headers)
    assert response.status_code == 204
    assert client.get(f"{DOCS}/{doc_id}", headers=author.headers).json()["checked_out_by"] is None
    assert _checkout(client, bob, doc_id).status_code == 200


def test_cancel_when_not_checked_out_is_409(client, author, doc_id) -> None:
    assert_problem(client.delete(f"{DOCS}/{doc_id}/checkout", headers=author.headers), 409, "not checked out")


def test_admin_break_without_reason_is_422_and_keeps_the_lock(client, author, admin, doc_id) -> None:
    _checkout(client, author, doc_id)
    response = client.delete(f"{DOCS}/{doc_id}/checkout", headers=admin.headers)
    assert_problem(response, 422, "reason")
    assert client.get(f"{DOCS}/{doc_id}", headers=admin.headers).json()["checked_out_by"] == "alice"


def test_admin_break_with_reason_is_204_and_audited(client, author, admin, doc_id) -> None:
    _checkout(client, author, doc_id)
    response = client.delete(f"{DOCS}/{doc_id}/checkout", params={"reason": "alice is on leave"},
                             headers=admin.headers)
    assert response.status_code == 204
    assert client.get(f"{DOCS}/{doc_id}", headers=admin.headers).json()["checked_out_by"] is None
    rows = client.get(f"{API}/audit", params={"object_id": doc_id, "action": "document.checkout_broken"},
                      headers=admin.headers).json()["items"]
    assert len(rows) == 1
    assert rows[0]["actor"] == "root"
    assert rows[0]["details"] == {"holder": "alice", "reason": "alice is on leave"}


def test_non_admin_break_is_403_and_keeps_the_lock(client, author, bob, doc_id) -> None:
    _checkout(client, author, doc_id)
    response = client.delete(f"{DOCS}/{doc_id}/checkout", params={"reason": "I want it"}, headers=bob.headers)
    assert_problem(response, 403)
    assert client.get(f"{DOCS}/{doc_id}", headers=bob.headers).json()["checked_out_by"] == "alice"


def test_former_holder_cannot_checkin_after_a_break(client, author, admin, doc_id) -> None:
    _checkout(client, author, doc_id)
    client.delete(f"{DOCS}/{doc_id}/checkout", params={"reason": "stuck"}, headers=admin.headers)
    assert_problem(checkin(client, author, doc_id, b"late"), 409)


def test_metadata_change_by_another_user_while_checked_out_is_409(client, author, bob, doc_id) -> None:
    _checkout(client, author, doc_id)
    response = client.patch(f"{DOCS}/{doc_id}", json={"title": "mine now"}, headers=bob.headers)
    assert_problem(response, 409)
