"""Working copies over HTTP: save with PUT, read with GET, check in with POST .../checkin and no file."""

from __future__ import annotations

import hashlib

import pytest

from tests.api.helpers import DOCS, assert_problem, checkin, create_document, create_type


@pytest.fixture
def doc_id(client, author) -> str:  # noqa: ANN001
    """A fresh document (version 1.0) written by alice and checked out to her."""
    doc = create_document(client, author, b"version one")["id"]
    assert client.post(f"{DOCS}/{doc}/checkout", headers=author.headers).status_code == 200
    return doc


@pytest.fixture
def bob(client, make_user):  # noqa: ANN001, ANN201
    """A second author."""
    return make_user("bob", "author")


def _save(client, account, doc_id: str, data: bytes, filename: str = "draft.txt"):  # noqa: ANN001, ANN202
    return client.put(f"{DOCS}/{doc_id}/working-copy", files={"file": (filename, data, "application/octet-stream")},
                      headers=account.headers)


def _content(client, account, doc_id: str) -> bytes:  # noqa: ANN001
    response = client.get(f"{DOCS}/{doc_id}/content", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.content


def test_holder_saves_and_reads_back_the_working_copy(client, author, doc_id) -> None:  # noqa: ANN001
    data = b"a draft that is not a version yet"
    response = _save(client, author, doc_id, data, "letter.txt")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert (body["size"], body["filename"], body["media_type"]) == (len(data), "letter.txt", "text/plain")
    got = client.get(f"{DOCS}/{doc_id}/working-copy", headers=author.headers)
    assert got.status_code == 200 and got.content == data
    assert got.headers["etag"] == f'"{body["sha256"]}"'
    assert _content(client, author, doc_id) == b"version one"
    versions = client.get(f"{DOCS}/{doc_id}/versions", headers=author.headers).json()
    assert [v["version"] for v in versions] == ["1.0"]


def test_checkin_without_a_body_checks_in_the_working_copy(client, author, doc_id) -> None:  # noqa: ANN001
    _save(client, author, doc_id, b"finished draft")
    response = client.post(f"{DOCS}/{doc_id}/checkin", headers=author.headers)
    assert response.status_code == 201, response.text
    assert response.json()["version"] == "1.1"
    assert _content(client, author, doc_id) == b"finished draft"
    assert client.get(f"{DOCS}/{doc_id}", headers=author.headers).json()["checked_out_by"] is None
    assert_problem(client.get(f"{DOCS}/{doc_id}/working-copy", headers=author.headers), 404)


def test_checkin_form_without_file_checks_in_the_working_copy(client, author, doc_id) -> None:  # noqa: ANN001
    _save(client, author, doc_id, b"rewritten")
    response = client.post(f"{DOCS}/{doc_id}/checkin", data={"major": "true", "comment": "new edition"},
                           files={"unused": ("x", b"", "text/plain")}, headers=author.headers)
    assert response.status_code == 201, response.text
    assert (response.json()["version"], response.json()["comment"]) == ("2.0", "new edition")
    assert _content(client, author, doc_id) == b"rewritten"


def test_checkin_with_a_file_still_uses_the_file(client, author, doc_id) -> None:  # noqa: ANN001
    _save(client, author, doc_id, b"draft that loses")
    assert checkin(client, author, doc_id, b"uploaded content").status_code == 201
    assert _content(client, author, doc_id) == b"uploaded content"


def test_checkin_without_file_or_working_copy_is_422(client, author, doc_id) -> None:  # noqa: ANN001
    assert_problem(client.post(f"{DOCS}/{doc_id}/checkin", headers=author.headers), 422, "working copy")


def test_checkin_without_body_and_without_checkout_is_409(client, author) -> None:  # noqa: ANN001
    doc = create_document(client, author, b"not checked out")["id"]
    assert_problem(client.post(f"{DOCS}/{doc}/checkin", headers=author.headers), 409, "check it out")


def test_other_users_cannot_see_or_write_the_working_copy(client, author, bob, doc_id) -> None:  # noqa: ANN001
    _save(client, author, doc_id, b"alice's private draft")
    assert_problem(client.get(f"{DOCS}/{doc_id}/working-copy", headers=bob.headers), 404)
    assert_problem(_save(client, bob, doc_id, b"bob's overwrite"), 409, "alice")
    assert client.get(f"{DOCS}/{doc_id}/working-copy", headers=author.headers).content == b"alice's private draft"


def test_working_copy_permissions_in_pairs(client, admin, author, make_user) -> None:  # noqa: ANN001
    create_type(client, admin, "memo", read_roles=["author", "helpdesk"], write_roles=["author"])
    reader, outsider = make_user("hd", "helpdesk"), make_user("aud", "auditor")
    doc = create_document(client, author, b"memo text", document_type="memo")["id"]
    client.post(f"{DOCS}/{doc}/checkout", headers=author.headers)
    assert_problem(_save(client, outsider, doc, b"x"), 404)
    assert_problem(client.get(f"{DOCS}/{doc}/working-copy", headers=outsider.headers), 404)
    assert_problem(_save(client, reader, doc, b"x"), 403)
    assert_problem(client.get(f"{DOCS}/{doc}/working-copy", headers=reader.headers), 404)
    assert _save(client, author, doc, b"the author's draft").status_code == 200
    assert client.get(f"{DOCS}/{doc}/working-copy", headers=author.headers).status_code == 200


def test_cancelled_checkout_discards_the_working_copy(client, author, doc_id) -> None:  # noqa: ANN001
    _save(client, author, doc_id, b"discarded draft")
    assert client.delete(f"{DOCS}/{doc_id}/checkout", headers=author.headers).status_code == 204
    client.post(f"{DOCS}/{doc_id}/checkout", headers=author.headers)
    assert_problem(client.get(f"{DOCS}/{doc_id}/working-copy", headers=author.headers), 404)


def test_saving_needs_a_file_part(client, author, doc_id) -> None:  # noqa: ANN001
    response = client.put(f"{DOCS}/{doc_id}/working-copy", data={"comment": "no file"},
                          files={"attachment": ("x.txt", b"wrong part", "text/plain")}, headers=author.headers)
    assert_problem(response, 422, "file")


def test_saving_without_a_checkout_is_409(client, author) -> None:  # noqa: ANN001
    doc = create_document(client, author, b"not checked out")["id"]
    assert_problem(_save(client, author, doc, b"draft"), 409, "check it out")


def test_working_copy_over_the_upload_limit_is_413(client, author, doc_id, monkeypatch) -> None:  # noqa: ANN001
    from repository import runtime

    monkeypatch.setenv("POSTROOM_MAX_UPLOAD_BYTES", "1000")
    runtime.get_runtime.cache_clear()
    from repository.config import get_settings

    get_settings.cache_clear()
    assert_problem(_save(client, author, doc_id, b"x" * 5000), 413)
    assert_problem(client.get(f"{DOCS}/{doc_id}/working-copy", headers=author.headers), 404)
