"""Permission pairs over HTTP: the caller without access gets 404 (403 for a missing role), the caller with access
succeeds."""

from __future__ import annotations

import pytest

from tests.api.helpers import API, DOCS, all_documents, assert_problem, create_document, create_type


@pytest.fixture
def records_doc(client, admin) -> str:  # noqa: ANN001
    """A document of a type only records managers may read and write."""
    create_type(client, admin, "personnel-file", read_roles=["records_manager"], write_roles=["records_manager"])
    return create_document(client, admin, b"confidential", document_type="personnel-file")["id"]


@pytest.fixture
def helpdesk(client, make_user):  # noqa: ANN001, ANN201
    """A help-desk user: may read the default types, not personnel files."""
    return make_user("harry", "helpdesk")


@pytest.fixture
def records_manager(client, make_user):  # noqa: ANN001, ANN201
    """A records manager: may read and write personnel files."""
    return make_user("rita", "records_manager")


READS = ["", "/content", "/versions"]


@pytest.mark.parametrize("suffix", READS)
def test_reader_without_role_gets_404(client, records_doc, helpdesk, suffix) -> None:
    body = assert_problem(client.get(f"{DOCS}/{records_doc}{suffix}", headers=helpdesk.headers), 404, "not found")
    assert "confidential" not in str(body)


@pytest.mark.parametrize("suffix", READS)
def test_reader_with_role_gets_200(client, records_doc, records_manager, suffix) -> None:
    assert client.get(f"{DOCS}/{records_doc}{suffix}", headers=records_manager.headers).status_code == 200


def test_denied_read_looks_exactly_like_a_missing_document(client, records_doc, helpdesk) -> None:
    denied = client.get(f"{DOCS}/{records_doc}", headers=helpdesk.headers).json()
    missing_id = "00000000-0000-0000-0000-000000000000"
    missing = client.get(f"{DOCS}/{missing_id}", headers=helpdesk.headers).json()
    assert {k: v for k, v in denied.items() if k not in ("detail", "instance")} == \
        {k: v for k, v in missing.items() if k not in ("detail", "instance")}
    assert denied["detail"].replace(records_doc, "ID") == missing["detail"].replace(missing_id, "ID")


def test_checkout_without_role_is_404(client, records_doc, helpdesk) -> None:
    assert_problem(client.post(f"{DOCS}/{records_doc}/checkout", headers=helpdesk.headers), 404)


def test_checkout_with_role_is_200(client, records_doc, records_manager) -> None:
    response = client.post(f"{DOCS}/{records_doc}/checkout", headers=records_manager.headers)
    assert response.status_code == 200
    assert response.json()["checked_out_by"] == "rita"


def test_list_hides_documents_the_caller_may_not_read(client, admin, records_doc, helpdesk) -> None:
    visible = create_document(client, admin, b"public")["id"]
    assert [d["id"] for d in all_documents(client, helpdesk)] == [visible]
    assert all_documents(client, helpdesk, document_type="personnel-file") == []


def test_list_shows_them_to_the_caller_who_may(client, admin, records_doc, records_manager) -> None:
    visible = create_document(client, admin, b"public")["id"]
    assert {d["id"] for d in all_documents(client, records_manager)} == {visible, records_doc}
    assert [d["id"] for d in all_documents(client, records_manager, document_type="personnel-file")] == [records_doc]


def test_patch_delete_and_restore_without_read_role_are_404(client, records_doc, helpdesk, admin) -> None:
    assert_problem(client.patch(f"{DOCS}/{records_doc}", json={"title": "x"}, headers=helpdesk.headers), 404)
    assert_problem(client.delete(f"{DOCS}/{records_doc}", headers=helpdesk.headers), 404)
    assert_problem(client.post(f"{DOCS}/{records_doc}/restore", headers=helpdesk.headers), 404)
    doc = client.get(f"{DOCS}/{records_doc}", headers=admin.headers).json()
    assert doc["state"] == "active"
    assert doc["title"] == "A document"


def test_upload_of_a_type_the_caller_cannot_write_is_refused(client, records_doc, author, admin) -> None:
    # An author may write `general`, but not this type.
    response = client.post(DOCS, data={"title": "t", "document_type": "personnel-file"},
                           files={"file": ("a.txt", b"x", "text/plain")}, headers=author.headers)
    assert_problem(response, 403, "personnel-file")
    assert [d["id"] for d in all_documents(client, admin)] == [records_doc]


def test_non_admin_cannot_create_document_types(client, author) -> None:
    response = client.post(f"{API}/document-types", headers=author.headers,
                           json={"name": "sneaky", "read_roles": ["author"], "write_roles": ["author"]})
    assert_problem(response, 403, "admin")
    names = [t["name"] for t in client.get(f"{API}/document-types", headers=author.headers).json()]
    assert "sneaky" not in names


def test_admin_creates_document_type(client, admin) -> None:
    created = create_type(client, admin, "invoice", read_roles=["helpdesk"], write_roles=["author"],
                          allowed_media_types=["application/pdf"])
    assert created["allowed_media_types"] == ["application/pdf"]
    names = [t["name"] for t in client.get(f"{API}/document-types", headers=admin.headers).json()]
    assert "invoice" in names


def test_fresh_install_has_the_default_document_types(client, author) -> None:
    names = {t["name"] for t in client.get(f"{API}/document-types", headers=author.headers).json()}
    assert {"general", "correspondence", "letter", "template", "content-block", "certificate"} <= names


def test_document_type_with_unknown_role_is_422(client, admin) -> None:
    response = client.post(f"{API}/document-types", headers=admin.headers,
                           json={"name": "odd", "read_roles": ["wizard"], "write_roles": []})
    assert_problem(response, 422, "wizard")
