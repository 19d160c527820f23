"""Documents over HTTP: upload, read, update with ETags, list, content and ranges, versions, trash, idempotency."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from tests.api.helpers import (
    DOCS,
    all_documents,
    assert_problem,
    checkin,
    create_customer,
    create_document,
    stored_files,
    upload,
)

CONTENT = b"0123456789abcdefghij"  # 20 bytes, easy to slice


# --- upload ---------------------------------------------------------------------------------------------------

def test_upload_answers_201_with_id_version_hash_and_size(client, author) -> None:
    data = b"The quick brown fox jumps over the lazy dog\n" * 100
    response = upload(client, author, data, title="Fox", metadata={"case": "A-1"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"]
    assert body["version"] == "1.0"
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["size"] == len(data)
    assert response.headers["location"] == f"{DOCS}/{body['id']}"


def test_upload_stores_exactly_the_bytes_sent(client, author) -> None:
    data = bytes(range(256)) * 50
    created = create_document(client, author, data, filename="bytes.bin")
    response = client.get(f"{DOCS}/{created['id']}/content", headers=author.headers)
    assert response.status_code == 200
    assert response.content == data
    assert hashlib.sha256(response.content).hexdigest() == created["sha256"]


def test_upload_links_customer_and_keeps_metadata(client, author) -> None:
    customer = create_customer(client, author)
    created = create_document(client, author, customer_id=customer["id"], metadata={"channel": "post", "n": 3})
    doc = client.get(f"{DOCS}/{created['id']}", headers=author.headers).json()
    assert doc["customer_id"] == customer["id"]
    assert doc["metadata"] == {"channel": "post", "n": 3}


def test_reader_without_write_role_cannot_upload(client, make_user) -> None:
    helpdesk = make_user("harry", "helpdesk")
    files_before = stored_files()
    # Refused before the body is stored: helpdesk may write no document type at all.
    assert_problem(upload(client, helpdesk, b"x" * (2 * 1024 * 1024)), 403, "document type")
    assert all_documents(client, helpdesk) == []
    assert stored_files() == files_before


# --- read and update ------------------------------------------------------------------------------------------

def test_get_gives_the_documented_fields_and_an_etag(client, author) -> None:
    created = create_document(client, author, title="Welcome letter", metadata={"k": "v"})
    response = client.get(f"{DOCS}/{created['id']}", headers=author.headers)
    assert response.status_code == 200
    doc = response.json()
    assert doc["id"] == created["id"]
    assert doc["title"] == "Welcome letter"
    assert doc["document_type"] == "general"
    assert doc["customer_id"] is None
    assert doc["metadata"] == {"k": "v"}
    assert doc["version"] == "1.0"
    assert doc["checked_out_by"] is None
    assert doc["state"] == "active"
    assert response.headers["etag"].startswith('"')


def test_get_unknown_document_is_404_problem(client, author) -> None:
    assert_problem(client.get(f"{DOCS}/00000000-0000-0000-0000-000000000000", headers=author.headers), 404)


def test_patch_with_current_etag_changes_title_and_gives_new_etag(client, author) -> None:
    created = create_document(client, author, title="Old")
    url = f"{DOCS}/{created['id']}"
    tag = client.get(url, headers=author.headers).headers["etag"]
    response = client.patch(url, json={"title": "New", "metadata": {"a": 1}},
                            headers={**author.headers, "If-Match": tag})
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "New"
    assert response.json()["metadata"] == {"a": 1}
    assert response.headers["etag"] != tag
    again = client.get(url, headers=author.headers)
    assert again.json()["title"] == "New"
    assert again.headers["etag"] == response.headers["etag"]


def test_patch_with_stale_etag_is_412_and_changes_nothing(client, author) -> None:
    created = create_document(client, author, title="Original")
    url = f"{DOCS}/{created['id']}"
    stale = client.get(url, headers=author.headers).headers["etag"]
    first = client.patch(url, json={"title": "First edit"}, headers={**author.headers, "If-Match": stale})
    assert first.status_code == 200
    response = client.patch(url, json={"title": "Lost update", "metadata": {"x": 1}},
                            headers={**author.headers, "If-Match": stale})
    assert_problem(response, 412, "ETag")
    doc = client.get(url, headers=author.headers).json()
    assert doc["title"] == "First edit"
    assert doc["metadata"] == {}


def test_patch_with_malformed_if_match_is_412(client, author) -> None:
    created = create_document(client, author, title="Original")
    url = f"{DOCS}/{created['id']}"
    response = client.patch(url, json={"title": "x"}, headers={**author.headers, "If-Match": "garbage"})
    assert_problem(response, 412)
    assert client.get(url, headers=author.headers).json()["title"] == "Original"


def test_patch_metadata_that_is_not_an_object_is_422(client, author) -> None:
    created = create_document(client, author, metadata={"keep": True})
    url = f"{DOCS}/{created['id']}"
    assert_problem(client.patch(url, json={"metadata": [1, 2]}, headers=author.headers), 422, "metadata")
    assert client.get(url, headers=author.headers).json()["metadata"] == {"keep": True}


# --- listing --------------------------------------------------------------------------------------------------

def test_list_filters_by_document_type(client, author) -> None:
    letter = create_document(client, author, document_type="letter")
    create_document(client, author, document_type="general")
    items = all_documents(client, author, document_type="letter")
    assert [d["id"] for d in items] == [letter["id"]]
    assert items[0]["document_type"] == "letter"


def test_list_filters_by_customer(client, author) -> None:
    ada = create_customer(client, author, "C-1", "Ada")
    grace = create_customer(client, author, "C-2", "Grace")
    ada_doc = create_document(client, author, customer_id=ada["id"])
    create_document(client, author, customer_id=grace["id"])
    create_document(client, author)
    items = all_documents(client, author, customer_id=ada["id"])
    assert [d["id"] for d in items] == [ada_doc["id"]]


def test_list_with_unknown_document_type_is_422(client, author) -> None:
    assert_problem(client.get(DOCS, params={"document_type": "no-such-type"}, headers=author.headers), 422,
                   "no-such-type")


def test_list_pages_with_next_cursor_through_every_document_once(client, author) -> None:
    created = {create_document(client, author, f"doc {i}".encode(), title=f"Doc {i}")["id"] for i in range(5)}
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get(DOCS, params=params, headers=author.headers).json()
        pages += 1
        assert len(page["items"]) <= 2
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5
    assert set(seen) == created


def test_list_with_bad_cursor_is_422(client, author) -> None:
    assert_problem(client.get(DOCS, params={"cursor": "!!!"}, headers=author.headers), 422, "cursor")


def test_list_with_forged_cursor_without_a_time_zone_is_422(client, author) -> None:
    forged = base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00", "x"]).encode()).decode().rstrip("=")
    assert_problem(client.get(DOCS, params={"cursor": forged}, headers=author.headers), 422, "cursor")


# --- content, versions, ranges --------------------------------------------------------------------------------

@pytest.fixture
def two_versions(client, author) -> tuple[str, bytes, bytes]:  # noqa: ANN001
    """A document with versions 1.0 (CONTENT) and 1.1."""
    created = create_document(client, author, CONTENT)
    assert client.post(f"{DOCS}/{created['id']}/checkout", headers=author.headers).status_code == 200
    newer = b"second version, longer than the first"
    assert checkin(client, author, created["id"], newer).status_code == 201
    return created["id"], CONTENT, newer


def test_content_returns_the_latest_version(client, author, two_versions) -> None:
    doc_id, _old, newer = two_versions
    response = client.get(f"{DOCS}/{doc_id}/content", headers=author.headers)
    assert response.status_code == 200
    assert response.content == newer
    assert response.headers["etag"] == f'"{hashlib.sha256(newer).hexdigest()}"'


def test_content_of_an_older_version_by_label(client, author, two_versions) -> None:
    doc_id, old, _newer = two_versions
    response = client.get(f"{DOCS}/{doc_id}/content", params={"version": "1.0"}, headers=author.headers)
    assert response.status_code == 200
    assert response.content == old


def test_content_with_bad_version_label_is_422(client, author, two_versions) -> None:
    doc_id, _old, _newer = two_versions
    response = client.get(f"{DOCS}/{doc_id}/content", params={"version": "abc"}, headers=author.headers)
    assert_problem(response, 422, "abc")


def test_content_of_missing_version_is_404(client, author, two_versions) -> None:
    doc_id, _old, _newer = two_versions
    response = client.get(f"{DOCS}/{doc_id}/content", params={"version": "9.9"}, headers=author.headers)
    assert_problem(response, 404, "9.9")


@pytest.mark.parametrize(("header", "expected", "content_range"), [
    ("bytes=0-4", CONTENT[0:5], "bytes 0-4/20"),
    ("bytes=-3", CONTENT[-3:], "bytes 17-19/20"),
    ("bytes=5-", CONTENT[5:], "bytes 5-19/20"),
    ("bytes=18-99", CONTENT[18:], "bytes 18-19/20"),
])
def test_range_request_returns_206_with_the_slice(client, author, header, expected, content_range) -> None:
    created = create_document(client, author, CONTENT)
    response = client.get(f"{DOCS}/{created['id']}/content", headers={**author.headers, "Range": header})
    assert response.status_code == 206
    assert response.content == expected
    assert response.headers["content-range"] == content_range
    assert response.headers["content-length"] == str(len(expected))


SEGMENTED = bytes((i * 7 + i // 251) % 256 for i in range(3 * 256 * 1024 + 1000))  # spans several segments


@pytest.mark.parametrize(("start", "end"), [
    (0, len(SEGMENTED)),
    (262_100, 262_200),
    (256 * 1024, 512 * 1024),
    (100, 600_000),
    (len(SEGMENTED) - 300_000, len(SEGMENTED)),
])
def test_range_across_encryption_segments_returns_exact_bytes(client, author, start, end) -> None:
    created = create_document(client, author, SEGMENTED, filename="big.bin")
    response = client.get(f"{DOCS}/{created['id']}/content",
                          headers={**author.headers, "Range": f"bytes={start}-{end - 1}"})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{len(SEGMENTED)}"
    assert response.content == SEGMENTED[start:end]


def test_large_content_reads_back_exactly(client, author) -> None:
    created = create_document(client, author, SEGMENTED, filename="big.bin")
    response = client.get(f"{DOCS}/{created['id']}/content", headers=author.headers)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(SEGMENTED).hexdigest()


@pytest.mark.parametrize("header", ["bytes=20-", "bytes=100-200", "bytes=-0"])
def test_unsatisfiable_range_is_416_with_the_size(client, author, header) -> None:
    created = create_document(client, author, CONTENT)
    response = client.get(f"{DOCS}/{created['id']}/content", headers={**author.headers, "Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */20"


def test_range_on_an_older_version_slices_that_version(client, author, two_versions) -> None:
    doc_id, old, _newer = two_versions
    response = client.get(f"{DOCS}/{doc_id}/content", params={"version": "1.0"},
                          headers={**author.headers, "Range": "bytes=10-14"})
    assert response.status_code == 206
    assert response.content == old[10:15]


def test_if_none_match_with_current_etag_is_304(client, author) -> None:
    created = create_document(client, author, CONTENT)
    url = f"{DOCS}/{created['id']}/content"
    tag = client.get(url, headers=author.headers).headers["etag"]
    response = client.get(url, headers={**author.headers, "If-None-Match": tag})
    assert response.status_code == 304
    assert response.content == b""


def test_if_none_match_with_old_etag_sends_the_new_content(client, author, two_versions) -> None:
    doc_id, old, newer = two_versions
    old_tag = f'"{hashlib.sha256(old).hexdigest()}"'
    response = client.get(f"{DOCS}/{doc_id}/content", headers={**author.headers, "If-None-Match": old_tag})
    assert response.status_code == 200
    assert response.content == newer


def test_versions_lists_history_oldest_first(client, author, two_versions) -> None:
    doc_id, old, newer = two_versions
    response = client.get(f"{DOCS}/{doc_id}/versions", headers=author.headers)
    assert response.status_code == 200
    versions = response.json()
    assert [v["version"] for v in versions] == ["1.0", "1.1"]
    assert [v["sha256"] for v in versions] == [hashlib.sha256(old).hexdigest(), hashlib.sha256(newer).hexdigest()]
    assert [v["size"] for v in versions] == [len(old), len(newer)]
    assert all(v["created_by"] == "alice" for v in versions)
    assert all(v["created_at"] and "comment" in v for v in versions)


# --- trash ----------------------------------------------------------------------------------------------------

def test_delete_moves_to_trash_out_of_the_list(client, author) -> None:
    keep = create_document(client, author, title="keep")
    gone = create_document(client, author, title="gone")
    response = client.delete(f"{DOCS}/{gone['id']}", headers=author.headers)
    assert response.status_code == 204
    assert [d["id"] for d in all_documents(client, author)] == [keep["id"]]
    assert [d["id"] for d in all_documents(client, author, trashed="true")] == [gone["id"]]


def test_trashed_document_still_reads_with_state_trashed(client, author) -> None:
    created = create_document(client, author, CONTENT)
    client.delete(f"{DOCS}/{created['id']}", headers=author.headers)
    response = client.get(f"{DOCS}/{created['id']}", headers=author.headers)
    assert response.status_code == 200
    assert response.json()["state"] == "trashed"
    assert client.get(f"{DOCS}/{created['id']}/content", headers=author.headers).content == CONTENT


def test_trashed_document_cannot_be_checked_out(client, author) -> None:
    created = create_document(client, author)
    client.delete(f"{DOCS}/{created['id']}", headers=author.headers)
    assert_problem(client.post(f"{DOCS}/{created['id']}/checkout", headers=author.headers), 409, "restore")


def test_restore_brings_it_back_into_the_list(client, author) -> None:
    created = create_document(client, author)
    client.delete(f"{DOCS}/{created['id']}", headers=author.headers)
    response = client.post(f"{DOCS}/{created['id']}/restore", headers=author.headers)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "active"
    assert [d["id"] for d in all_documents(client, author)] == [created["id"]]


def test_restore_of_an_active_document_is_409(client, author) -> None:
    created = create_document(client, author)
    assert_problem(client.post(f"{DOCS}/{created['id']}/restore", headers=author.headers), 409, "trash")


def test_reader_without_write_role_cannot_delete(client, author, make_user) -> None:
    created = create_document(client, author)
    helpdesk = make_user("harry", "helpdesk")
    assert_problem(client.delete(f"{DOCS}/{created['id']}", headers=helpdesk.headers), 403)
    assert client.get(f"{DOCS}/{created['id']}", headers=author.headers).json()["state"] == "active"


# --- idempotency ----------------------------------------------------------------------------------------------

def test_same_idempotency_key_and_request_replays_the_first_answer(client, author) -> None:
    key = {"Idempotency-Key": "upload-1"}
    first = upload(client, author, CONTENT, title="Once", headers=key)
    second = upload(client, author, CONTENT, title="Once", headers=key)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers.get("idempotent-replayed") == "true"
    assert [d["id"] for d in all_documents(client, author)] == [first.json()["id"]]


def test_same_idempotency_key_with_different_request_is_409(client, author) -> None:
    key = {"Idempotency-Key": "upload-2"}
    first = upload(client, author, CONTENT, title="Once", headers=key)
    assert first.status_code == 201
    files_before = stored_files()
    response = upload(client, author, b"other bytes", title="Once", headers=key)
    assert_problem(response, 409, "Idempotency-Key")
    assert stored_files() == files_before
    assert [d["id"] for d in all_documents(client, author)] == [first.json()["id"]]


@pytest.mark.parametrize("key", ["k" * 256, "tab\there"])
def test_malformed_idempotency_key_is_422(client, author, key) -> None:
    files_before = stored_files()
    assert_problem(upload(client, author, CONTENT, headers={"Idempotency-Key": key}), 422, "Idempotency-Key")
    assert all_documents(client, author) == []
    assert stored_files() == files_before


def test_different_idempotency_keys_create_two_documents(client, author) -> None:
    first = upload(client, author, CONTENT, headers={"Idempotency-Key": "k-1"})
    second = upload(client, author, CONTENT, headers={"Idempotency-Key": "k-2"})
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert len(all_documents(client, author)) == 2


def test_idempotency_keys_are_per_user(client, author, make_user) -> None:
    other = make_user("ann", "author")
    first = upload(client, author, CONTENT, headers={"Idempotency-Key": "shared"})
    second = upload(client, other, CONTENT, headers={"Idempotency-Key": "shared"})
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
