"""`POST /api/v1/documents/batch`: many small documents in one request, all or none."""

from __future__ import annotations

import hashlib
import json

from api.batch_uploads import MAX_FILE_BYTES, MAX_FILES
from tests.api.helpers import DOCS, all_documents, assert_problem, create_customer, stored_files


def _files(n: int, size: int = 200) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (f"note-{i}.txt", (f"note {i} ".encode() * size)[:size], "text/plain")) for i in range(n)]


def test_a_batch_creates_every_document_with_its_content(client, author) -> None:  # noqa: ANN001
    customer = create_customer(client, author)
    files = _files(12)
    items = [{"title": f"Note {i}", "metadata": {"n": i}} for i in range(12)]
    items[5]["customer_id"] = customer["id"]
    response = client.post(f"{DOCS}/batch", files=files, headers=author.headers,
                           data={"document_type": "general", "items": json.dumps(items)})
    assert response.status_code == 201, response.text
    created = response.json()["documents"]
    assert [d["title"] for d in created] == [f"Note {i}" for i in range(12)]
    for (_field, (_name, data, _type)), document in zip(files, created, strict=True):
        assert document["sha256"] == hashlib.sha256(data).hexdigest() and document["version"] == "1.0"
        content = client.get(f"{DOCS}/{document['id']}/content", headers=author.headers)
        assert content.content == data
    fifth = client.get(f"{DOCS}/{created[5]['id']}", headers=author.headers).json()
    assert (fifth["customer_id"], fifth["metadata"]) == (customer["id"], {"n": 5})


def test_titles_default_to_the_file_names(client, author) -> None:  # noqa: ANN001
    response = client.post(f"{DOCS}/batch", files=_files(3), data={"document_type": "general"},
                           headers=author.headers)
    assert response.status_code == 201, response.text
    assert [d["title"] for d in response.json()["documents"]] == ["note-0.txt", "note-1.txt", "note-2.txt"]


def test_one_refused_file_refuses_the_batch_naming_it_and_keeps_nothing(client, author) -> None:  # noqa: ANN001
    files = _files(4)
    files[2] = ("file", ("evil.xml", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>',
                         "application/xml"))
    before = stored_files()
    response = client.post(f"{DOCS}/batch", files=files, data={"document_type": "general"}, headers=author.headers)
    body = assert_problem(response, 422, "DOCTYPE")
    assert body["item"] == 2
    assert all_documents(client, author) == []
    assert stored_files() == before


def test_limits_and_malformed_fields_are_refused_saying_what_was_wrong(client, author) -> None:  # noqa: ANN001
    too_many = client.post(f"{DOCS}/batch", files=_files(MAX_FILES + 1, 10), data={"document_type": "general"},
                           headers=author.headers)
    assert_problem(too_many, 422, str(MAX_FILES))
    too_big = client.post(f"{DOCS}/batch", files=_files(1, MAX_FILE_BYTES + 1), data={"document_type": "general"},
                          headers=author.headers)
    assert_problem(too_big, 413, "one at a time")
    for items, words in (("[1, 2]", ("items",)), ('[{"colour": "red"}, {}]', ("colour",)),
                         ('[{"metadata": []}, {}]', ("metadata",)), ("{", ("items", "JSON")),
                         ('[{}, {"customer_id": 7}]', ("items[1].customer_id", "string"))):
        response = client.post(f"{DOCS}/batch", files=_files(2), headers=author.headers,
                               data={"document_type": "general", "items": items})
        assert_problem(response, 422, *words)
    no_type = client.post(f"{DOCS}/batch", files=_files(2), headers=author.headers)
    assert_problem(no_type, 422, "document_type")
    no_files = client.post(f"{DOCS}/batch", data={"document_type": "general"}, files={"x": ("a", b"")},
                           headers=author.headers)
    assert_problem(no_files, 422, "file")
    assert all_documents(client, author) == []


def test_a_caller_who_may_not_write_the_type_gets_403_and_nothing_written(client, make_user) -> None:  # noqa: ANN001
    helpdesk = make_user("hd", "helpdesk")
    response = client.post(f"{DOCS}/batch", files=_files(2), data={"document_type": "letter"},
                           headers=helpdesk.headers)
    assert_problem(response, 403)
    assert all_documents(client, helpdesk) == []


def test_a_retry_with_the_same_idempotency_key_creates_nothing_more(client, author) -> None:  # noqa: ANN001
    headers = {**author.headers, "Idempotency-Key": "batch-1"}
    first = client.post(f"{DOCS}/batch", files=_files(3), data={"document_type": "general"}, headers=headers)
    again = client.post(f"{DOCS}/batch", files=_files(3), data={"document_type": "general"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    assert len(all_documents(client, author)) == 3
    other = client.post(f"{DOCS}/batch", files=_files(2), data={"document_type": "general"}, headers=headers)
    assert_problem(other, 409)
