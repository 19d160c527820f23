"""Hostile and malformed uploads: each gets a 4xx problem that says what to fix, never a 500, and leaves nothing
stored (no document, no blob, no spool file)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator

import pytest

from repository import runtime
from tests.api.helpers import (
    API,
    DOCS,
    PLAIN_DOCUMENT_XML,
    all_documents,
    assert_problem,
    create_customer,
    create_document,
    create_type,
    docx,
    stored_files,
    upload,
)

MiB = 1024 * 1024


@pytest.fixture
def nothing_stored(client, admin) -> Iterator[Callable[[], None]]:  # noqa: ANN001
    """Call it after a refused request: no new document (as admin sees it) and no new file in blobs or tmp."""
    documents_before = {d["id"] for d in all_documents(client, admin)}
    files_before = stored_files()

    def check() -> None:
        assert {d["id"] for d in all_documents(client, admin)} == documents_before
        assert stored_files() == files_before

    yield check


def multipart(fields: dict[str, str], file: tuple[str, bytes] | None = None,
              boundary: str = "postroom-test-boundary") -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body built by hand (so a part can be left out) and its Content-Type header."""
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value.encode() + b"\r\n")
    if file is not None:
        filename, data = file
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                  f"Content-Type: application/octet-stream\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


# --- form fields ----------------------------------------------------------------------------------------------

def test_malformed_metadata_json_is_422(client, author, nothing_stored) -> None:
    body = assert_problem(upload(client, author, metadata='{"case": '), 422, "metadata", "JSON")
    assert body["field"] == "metadata"
    nothing_stored()


def test_metadata_that_is_a_json_array_is_422(client, author, nothing_stored) -> None:
    assert_problem(upload(client, author, metadata="[1, 2, 3]"), 422, "metadata", "object")
    nothing_stored()


def test_unknown_document_type_is_422(client, author, nothing_stored) -> None:
    assert_problem(upload(client, author, document_type="no-such-type"), 422, "no-such-type")
    nothing_stored()


def test_missing_title_is_422_naming_it(client, author, nothing_stored) -> None:
    body, headers = multipart({"document_type": "general"}, ("a.txt", b"hello"))
    response = client.post(DOCS, content=body, headers={**author.headers, **headers})
    assert_problem(response, 422, "title")
    nothing_stored()


def test_blank_title_is_422(client, author, nothing_stored) -> None:
    assert_problem(upload(client, author, title="   "), 422, "title")
    nothing_stored()


def test_missing_file_part_is_422_naming_it(client, author, nothing_stored) -> None:
    body, headers = multipart({"title": "T", "document_type": "general"})
    response = client.post(DOCS, content=body, headers={**author.headers, **headers})
    assert_problem(response, 422, "file")
    nothing_stored()


def test_two_file_parts_are_422(client, author, nothing_stored) -> None:
    response = client.post(DOCS, data={"title": "T", "document_type": "general"},
                           files=[("file", ("a.txt", b"one", "text/plain")), ("file", ("b.txt", b"two", "text/plain"))],
                           headers=author.headers)
    assert_problem(response, 422, "one")
    nothing_stored()


def test_non_multipart_body_is_422_asking_for_multipart(client, author, nothing_stored) -> None:
    response = client.post(DOCS, json={"title": "T", "document_type": "general", "file": "aGVsbG8="},
                           headers=author.headers)
    assert_problem(response, 422, "multipart/form-data")
    nothing_stored()


def test_multipart_without_boundary_is_422(client, author, nothing_stored) -> None:
    response = client.post(DOCS, content=b"whatever", headers={**author.headers, "Content-Type": "multipart/form-data"})
    assert_problem(response, 422, "boundary")
    nothing_stored()


def test_garbage_multipart_body_is_4xx_not_500(client, author, nothing_stored) -> None:
    response = client.post(DOCS, content=b"\x00\xff not a multipart body at all \r\n--",
                           headers={**author.headers, "Content-Type": "multipart/form-data; boundary=zzz"})
    assert_problem(response, 422)
    nothing_stored()


def test_customer_that_does_not_exist_is_422(client, author, nothing_stored) -> None:
    response = upload(client, author, customer_id="00000000-0000-0000-0000-000000000000")
    body = assert_problem(response, 422, "customer")
    assert body["field"] == "customer_id"
    nothing_stored()


def test_existing_customer_is_accepted(client, author) -> None:
    """The pair of the test above: the same upload with a real customer works."""
    customer = create_customer(client, author)
    assert upload(client, author, customer_id=customer["id"]).status_code == 201


@pytest.mark.parametrize("length", [501, 70 * 1024])
def test_very_long_title_is_422(client, author, nothing_stored, length) -> None:
    assert_problem(upload(client, author, title="T" * length), 422, "title")
    nothing_stored()


def test_title_of_500_characters_is_accepted(client, author) -> None:
    created = create_document(client, author, title="T" * 500)
    assert client.get(f"{DOCS}/{created['id']}", headers=author.headers).json()["title"] == "T" * 500


def test_checkin_without_file_part_is_422_and_keeps_the_lock(client, author) -> None:
    doc_id = create_document(client, author)["id"]
    client.post(f"{DOCS}/{doc_id}/checkout", headers=author.headers)
    body, headers = multipart({"comment": "no file"})
    response = client.post(f"{DOCS}/{doc_id}/checkin", content=body, headers={**author.headers, **headers})
    assert_problem(response, 422, "file")
    doc = client.get(f"{DOCS}/{doc_id}", headers=author.headers).json()
    assert doc["version"] == "1.0"
    assert doc["checked_out_by"] == "alice"


# --- media types ----------------------------------------------------------------------------------------------

@pytest.fixture
def pdf_only(client, admin) -> str:  # noqa: ANN001
    """A type that accepts PDFs only."""
    return create_type(client, admin, "signed-pdf", read_roles=["author"], write_roles=["author"],
                       allowed_media_types=["application/pdf"])["name"]


def test_text_named_pdf_is_415_for_a_pdf_only_type(client, author, pdf_only, nothing_stored) -> None:
    response = upload(client, author, b"just some text, honestly", filename="x.pdf", document_type=pdf_only)
    body = assert_problem(response, 415, "text/plain", "application/pdf")
    assert body["media_type"] == "text/plain"
    nothing_stored()


def test_real_pdf_is_accepted_by_a_pdf_only_type(client, author, pdf_only) -> None:
    data = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    response = upload(client, author, data, filename="whatever.bin", document_type=pdf_only)
    assert response.status_code == 201, response.text
    assert response.json()["media_type"] == "application/pdf"


def test_large_refused_upload_leaves_no_spool_file(client, author, pdf_only, nothing_stored) -> None:
    response = upload(client, author, b"a" * (3 * MiB), filename="big.pdf", document_type=pdf_only)
    assert_problem(response, 415)
    nothing_stored()


def test_checkin_of_a_refused_media_type_is_415_and_keeps_the_lock(client, author, pdf_only) -> None:
    pdf = b"%PDF-1.4\n%%EOF\n"
    doc_id = create_document(client, author, pdf, document_type=pdf_only)["id"]
    client.post(f"{DOCS}/{doc_id}/checkout", headers=author.headers)
    response = client.post(f"{DOCS}/{doc_id}/checkin", files={"file": ("x.pdf", b"plain text", "application/pdf")},
                           headers=author.headers)
    assert_problem(response, 415, "text/plain")
    doc = client.get(f"{DOCS}/{doc_id}", headers=author.headers).json()
    assert doc["version"] == "1.0"
    assert doc["checked_out_by"] == "alice"


# --- archives -------------------------------------------------------------------------------------------------

def test_clean_docx_is_accepted_as_wordprocessing_document(client, author) -> None:
    response = upload(client, author, docx(PLAIN_DOCUMENT_XML), filename="letter.docx")
    assert response.status_code == 201, response.text
    assert response.json()["media_type"] == \
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def test_docx_with_doctype_entity_is_422(client, author, nothing_stored) -> None:
    hostile = (b'<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
               b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
               b"<w:body><w:p><w:r><w:t>&xxe;</w:t></w:r></w:p></w:body></w:document>")
    response = upload(client, author, docx(hostile), filename="letter.docx")
    assert_problem(response, 422, "DOCTYPE", "word/document.xml")
    nothing_stored()


def test_bare_xml_with_entity_is_422(client, author, nothing_stored) -> None:
    hostile = b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">]><lolz>&lol;</lolz>'
    assert_problem(upload(client, author, hostile, filename="data.xml"), 422, "DOCTYPE")
    nothing_stored()


def test_zip_bomb_is_422(client, author, nothing_stored) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.bin", b"\0" * (50 * MiB))
    bomb = buffer.getvalue()
    assert len(bomb) < MiB
    response = upload(client, author, bomb, filename="innocent.zip")
    assert_problem(response, 422, "compression ratio")
    nothing_stored()


def test_archive_with_too_many_entries_is_422(client, author, nothing_stored, monkeypatch) -> None:
    monkeypatch.setenv("POSTROOM_MAX_ZIP_ENTRIES", "5")
    runtime.reset()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for i in range(6):
            z.writestr(f"f{i}.txt", b"x")
    assert_problem(upload(client, author, buffer.getvalue(), filename="many.zip"), 422, "entries")
    nothing_stored()


def test_truncated_zip_is_422(client, author, nothing_stored) -> None:
    data = docx(PLAIN_DOCUMENT_XML)
    assert_problem(upload(client, author, data[: len(data) // 2], filename="broken.docx"), 422, "ZIP")
    nothing_stored()


# --- filenames ------------------------------------------------------------------------------------------------

def _outside_data_and_keys(root) -> set:  # noqa: ANN001
    return {p for p in root.rglob("*") if p.relative_to(root).parts[0] not in ("data", "keys")}


@pytest.mark.parametrize(("sent", "kept"), [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\evil.txt", "evil.txt"),
    ("/absolute/path/report.txt", "report.txt"),
])
def test_filename_is_kept_only_as_a_name(client, author, tmp_path, sent, kept) -> None:
    outside_before = _outside_data_and_keys(tmp_path)
    created = create_document(client, author, b"not really a password file", filename=sent)
    versions = client.get(f"{DOCS}/{created['id']}/versions", headers=author.headers).json()
    assert [v["filename"] for v in versions] == [kept]
    content = client.get(f"{DOCS}/{created['id']}/content", headers=author.headers)
    assert content.headers["content-disposition"].endswith(f"''{kept}")
    assert _outside_data_and_keys(tmp_path) == outside_before
    assert not [p for p in tmp_path.rglob("*") if p.name == kept]


# --- size limit -----------------------------------------------------------------------------------------------

LIMIT = 64 * 1024


@pytest.fixture
def small_client(repo, monkeypatch):  # noqa: ANN001, ANN201
    """A client on an app whose upload limit is LIMIT bytes."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    monkeypatch.setenv("POSTROOM_MAX_UPLOAD_BYTES", str(LIMIT))
    runtime.reset()
    with TestClient(create_app(run_worker_thread=False), raise_server_exceptions=False) as c:
        yield c


def test_upload_at_the_limit_is_accepted(small_client, make_user) -> None:
    author = make_user("alice", "author")
    response = upload(small_client, author, b"a" * LIMIT)
    assert response.status_code == 201, response.text
    assert response.json()["size"] == LIMIT


def test_upload_over_the_limit_is_413(small_client, make_user) -> None:
    author, admin = make_user("alice", "author"), make_user("root", "admin")
    files_before = stored_files()
    response = upload(small_client, author, b"a" * (LIMIT + 1))
    assert_problem(response, 413, str(LIMIT))
    assert all_documents(small_client, admin) == []
    assert stored_files() == files_before


def test_upload_with_declared_length_far_over_the_limit_is_413(small_client, make_user) -> None:
    author, admin = make_user("alice", "author"), make_user("root", "admin")
    response = upload(small_client, author, b"a" * (4 * MiB))
    assert_problem(response, 413, "limit")
    assert all_documents(small_client, admin) == []


def test_chunked_upload_over_the_limit_is_413_while_streaming(small_client, make_user) -> None:
    author, admin = make_user("alice", "author"), make_user("root", "admin")
    files_before = stored_files()
    body, headers = multipart({"title": "T", "document_type": "general"}, ("big.bin", b"a" * (3 * MiB)))

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must be enforced as bytes arrive
        for i in range(0, len(body), 256 * 1024):
            yield body[i : i + 256 * 1024]

    response = small_client.post(DOCS, content=chunks(), headers={**author.headers, **headers})
    assert_problem(response, 413, str(LIMIT))
    assert all_documents(small_client, admin) == []
    assert stored_files() == files_before


def test_checkin_over_the_limit_is_413_and_adds_no_version(small_client, make_user) -> None:
    author = make_user("alice", "author")
    doc_id = upload(small_client, author, b"small").json()["id"]
    small_client.post(f"{DOCS}/{doc_id}/checkout", headers=author.headers)
    response = small_client.post(f"{DOCS}/{doc_id}/checkin", headers=author.headers,
                                 files={"file": ("big.bin", b"a" * (LIMIT + 1), "application/octet-stream")})
    assert_problem(response, 413)
    versions = small_client.get(f"{DOCS}/{doc_id}/versions", headers=author.headers).json()
    assert [v["version"] for v in versions] == ["1.0"]


# --- values the database cannot hold -------------------------------------------------------------------------

@pytest.mark.parametrize("metadata", ['{"score": NaN}', '{"score": Infinity}', '{"x": -Infinity}'])
def test_metadata_with_non_finite_number_is_422(client, author, nothing_stored, metadata) -> None:
    assert_problem(upload(client, author, metadata=metadata), 422, "metadata")
    nothing_stored()


def test_metadata_with_a_huge_integer_is_422(client, author, nothing_stored) -> None:
    assert_problem(upload(client, author, metadata='{"n": ' + "9" * 5000 + "}"), 422, "metadata")
    nothing_stored()


def test_deeply_nested_metadata_is_422(client, author, nothing_stored) -> None:
    assert_problem(upload(client, author, metadata='{"a": ' + "[" * 20000 + "]" * 20000 + "}"), 422, "metadata")
    nothing_stored()


def test_metadata_with_nul_character_is_422(client, author, nothing_stored) -> None:
    assert_problem(upload(client, author, metadata='{"note": "a\\u0000b"}'), 422, "metadata", "NUL")
    nothing_stored()


def test_metadata_with_escaped_backslash_u0000_text_is_accepted(client, author) -> None:
    """The literal text \\u0000 (a backslash, not a NUL) is ordinary text."""
    created = create_document(client, author, metadata={"note": "\\u0000"})
    assert client.get(f"{DOCS}/{created['id']}", headers=author.headers).json()["metadata"] == {"note": "\\u0000"}


@pytest.mark.parametrize("field", ["title", "document_type", "customer_id"])
def test_form_field_with_nul_character_is_422_naming_it(client, author, nothing_stored, field) -> None:
    fields = {"title": "T", "document_type": "general", field: "gen\x00eral"}
    body, headers = multipart(fields, ("a.txt", b"hello"))
    response = client.post(DOCS, content=body, headers={**author.headers, **headers})
    assert assert_problem(response, 422, "NUL")["field"] == field
    nothing_stored()


def test_patch_metadata_with_nan_is_422_and_changes_nothing(client, author) -> None:
    created = create_document(client, author, metadata={"keep": 1})
    url = f"{DOCS}/{created['id']}"
    response = client.patch(url, content=b'{"metadata": {"score": NaN}}',
                            headers={**author.headers, "Content-Type": "application/json"})
    assert_problem(response, 422, "metadata")
    assert client.get(url, headers=author.headers).json()["metadata"] == {"keep": 1}


def test_patch_metadata_with_nul_is_422_and_changes_nothing(client, author) -> None:
    created = create_document(client, author, metadata={"keep": 1})
    url = f"{DOCS}/{created['id']}"
    assert_problem(client.patch(url, json={"metadata": {"k": "\x00"}}, headers=author.headers), 422, "NUL")
    assert client.get(url, headers=author.headers).json()["metadata"] == {"keep": 1}


# NUL characters in JSON bodies, queries and paths: SQLite stores them faithfully; PostgreSQL cannot, and the
# answer must then be a 422 that says so, never a 500.

def _nul_refused_or_kept(database: str, response, stored_ok: int) -> bool:  # noqa: ANN001
    if database:  # PostgreSQL
        assert_problem(response, 422, "NUL")
        return False
    assert response.status_code == stored_ok, response.text
    return True


def test_customer_name_with_nul(client, author, database) -> None:
    response = client.post(f"{API}/customers", json={"external_ref": "C-NUL", "name": "Ada\x00Lovelace"},
                           headers=author.headers)
    if _nul_refused_or_kept(database, response, 201):
        got = client.get(f"{API}/customers/{response.json()['id']}", headers=author.headers).json()
        assert got["name"] == "Ada\x00Lovelace"
    else:
        assert client.get(f"{API}/customers", headers=author.headers).json() == []


def test_customer_search_with_nul(client, author, database) -> None:
    response = client.get(f"{API}/customers", params={"q": "a\x00b"}, headers=author.headers)
    if _nul_refused_or_kept(database, response, 200):
        assert response.json() == []


def test_patch_title_with_nul(client, author, database) -> None:
    created = create_document(client, author, title="Before")
    url = f"{DOCS}/{created['id']}"
    response = client.patch(url, json={"title": "a\x00b"}, headers=author.headers)
    expected = "a\x00b" if _nul_refused_or_kept(database, response, 200) else "Before"
    assert client.get(url, headers=author.headers).json()["title"] == expected


def test_document_id_with_nul(client, author, database) -> None:
    response = client.get(f"{DOCS}/abc%00def", headers=author.headers)
    if database:
        assert_problem(response, 422, "NUL")
    else:
        assert_problem(response, 404)


def test_login_with_nul_in_username(client, database) -> None:
    response = client.post(f"{API}/auth/token", data={"username": "a\x00b", "password": "whatever-password"})
    if database:
        assert_problem(response, 422, "NUL")
    else:
        assert_problem(response, 401)
