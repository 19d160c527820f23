"""WebDAV on the folder tree (/dav/files/) and on correspondence templates (/dav/templates/), over a real server
with a real client."""

from __future__ import annotations

import pytest
from webdav4.client import HTTPError

from repository.db import transaction
from repository.models import Document
from tests.api import dav_support
from tests.api.dav_support import (
    dav,
    get,
    http,
    lock,
    put,
    rest,
    rest_content,
    unlock,
    versions,
)
from tests.api.helpers import API, DOCS, docx

alice, base = dav_support.alice, dav_support.base  # fixtures


def test_folder_tree_maps_to_documents_and_versions(base, alice) -> None:  # noqa: ANN001
    client = dav(base, alice)
    client.mkdir("files/letters")
    put(client, "files/letters/ada.txt", b"to Ada, first")
    put(client, "files/letters/ada.txt", b"to Ada, second")
    with transaction(readonly=True) as s:
        doc = s.query(Document).filter(Document.title == "ada.txt").one()
    assert versions(base, alice, doc.id) == ["1.0", "1.1"]
    client.copy("files/letters/ada.txt", "files/letters/ada-copy.txt")
    client.move("files/letters/ada.txt", "files/letters/ada-renamed.txt")
    assert sorted(e["name"] for e in client.ls("files/letters")) == [
        "files/letters/ada-copy.txt", "files/letters/ada-renamed.txt"]
    assert get(client, "files/letters/ada-copy.txt") == b"to Ada, second"
    with rest(base, alice) as api:
        assert api.get(f"{DOCS}/{doc.id}").json()["title"] == "ada-renamed.txt"  # the same document, renamed
    client.remove("files/letters/ada-renamed.txt")
    with rest(base, alice) as api:
        assert api.get(f"{DOCS}/{doc.id}").json()["state"] == "trashed"


def _template_docx(text: str) -> bytes:
    xml = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats'
           f'.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>')
    return docx(xml.encode())


def _register_template(base: str, account, locale: str, data: bytes) -> dict:  # noqa: ANN001
    with rest(base, account) as api:
        response = api.post(f"{API}/templates", data={"name": "welcome", "locale": locale, "category": "welcome"},
                            files={"file": ("welcome.docx", data, "application/octet-stream")})
    assert response.status_code == 201, response.text
    return response.json()


def test_templates_are_edited_in_place(base, alice) -> None:  # noqa: ANN001
    english, german = _template_docx("Welcome, {{ name }}."), _template_docx("Willkommen, {{ name }}.")
    template = _register_template(base, alice, "en-GB", english)
    _register_template(base, alice, "de-DE", german)
    client = dav(base, alice)
    assert sorted(e["name"] for e in client.ls("templates")) == [
        "templates/welcome.de-DE.docx", "templates/welcome.docx"]
    assert get(client, "/templates/welcome.docx") == english
    assert get(client, "/templates/welcome.de-DE.docx") == german
    assert client.ls("content-blocks") == []

    path = "/templates/welcome.docx"
    token = lock(base, alice, path).headers["Lock-Token"].strip("<>")
    with pytest.raises(HTTPError) as not_docx:  # the template type takes DOCX only, even as a working copy
        put(client, path, b"not a DOCX at all", token)
    assert not_docx.value.response.status_code == 415
    broken = _template_docx("Welcome, {{ name")
    put(client, path, broken, token)  # saved; the template checks run at check-in
    refused = unlock(base, alice, path, token)
    assert refused.status_code == 422, refused.text  # the broken template is refused, and nothing is lost
    assert versions(base, alice, template["document_id"]) == ["1.0"]
    assert get(client, path) == broken
    edited = _template_docx("Welcome aboard, {{ name }}.")
    put(client, path, edited, token)
    assert unlock(base, alice, path, token).status_code == 204
    assert versions(base, alice, template["document_id"]) == ["1.0", "1.1"]
    assert rest_content(base, alice, template["document_id"]) == edited


def test_template_permissions_in_pairs(base, alice, make_user) -> None:  # noqa: ANN001
    _register_template(base, alice, "en-GB", _template_docx("Hello."))
    approver = make_user("ann", "approver")  # reads templates, writes none
    with http(base, approver) as c:
        assert c.get("/dav/templates/welcome.docx").status_code == 200
        assert c.put("/dav/templates/welcome.docx", content=_template_docx("Changed.")).status_code == 403
        assert c.get("/dav/templates/welcome.fr-FR.docx").status_code == 404  # no such variant, no fallback


def test_folder_permissions_in_pairs(base, client, alice, make_user) -> None:  # noqa: ANN001
    from sqlalchemy import update

    from repository.models import DocumentType

    dav(base, alice).mkdir("files/shared")
    put(dav(base, alice), "files/shared/note.txt", b"a note")
    with transaction() as s:  # only authors and helpdesk may read `general` documents, and so the tree
        s.execute(update(DocumentType).where(DocumentType.name == "general")
                  .values(read_roles=["author", "helpdesk"]))
    outsider, reader = make_user("aud", "auditor"), make_user("hd", "helpdesk")
    with http(base, outsider) as c:  # may not read: the tree is not there
        assert c.request("PROPFIND", "/dav/files/", headers={"Depth": "1"}).status_code == 404
        assert c.get("/dav/files/shared/note.txt").status_code == 404
    with http(base, reader) as c:  # may read, not write: sees it, changes are 403
        assert c.request("PROPFIND", "/dav/files/shared/", headers={"Depth": "1"}).status_code == 207
        assert c.get("/dav/files/shared/note.txt").content == b"a note"
        assert c.request("MKCOL", "/dav/files/shared/sub/").status_code == 403
        assert c.put("/dav/files/shared/new.txt", content=b"x").status_code == 403
        assert c.put("/dav/files/shared/note.txt", content=b"x").status_code == 403
        assert c.delete("/dav/files/shared/note.txt").status_code == 403
    assert lock(base, reader, "/files/shared/").status_code == 403  # a reader's lock would hold writers up
    assert lock(base, reader, "/files/shared/note.txt").status_code == 403
    with http(base, alice) as c:  # the author may
        assert c.request("MKCOL", "/dav/files/shared/sub/").status_code == 201
        assert c.delete("/dav/files/shared/").status_code == 204
