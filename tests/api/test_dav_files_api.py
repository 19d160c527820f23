"""WebDAV on the folder tree (/dav/files/) and on correspondence templates (/dav/templates/), over a real server
with a real client."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from sqlalchemy import select
from webdav4.client import HTTPError

from repository import validators
from repository.db import transaction
from repository.errors import UnsafeContentError
from repository.models import AuditEntry, DavLock, Document
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


@pytest.fixture
def refuse_forbidden():  # noqa: ANN201
    """A content check on `general` documents that refuses any text saying "forbidden"."""
    def check(_session, candidate: validators.Candidate) -> None:  # noqa: ANN001
        with candidate.open() as f:
            if b"forbidden" in f.read():
                raise UnsafeContentError("the text says forbidden")

    validators.register("general", "test-forbidden", check)
    yield
    validators.unregister("general", "test-forbidden")


def _document_id(title: str) -> str:
    with transaction(readonly=True) as s:
        return s.execute(select(Document.id).where(Document.title == title)).scalar_one()


def _names(client, folder: str) -> list[str]:  # noqa: ANN001
    return sorted(e["name"] for e in client.ls(folder))


def test_a_move_whose_check_in_is_refused_leaves_nothing_moved(base, alice, refuse_forbidden) -> None:  # noqa: ANN001
    client = dav(base, alice)
    client.mkdir("files/drafts")
    client.mkdir("files/sent")
    put(client, "files/drafts/letter.txt", b"first words")
    put(client, "files/sent/old.txt", b"an older letter")
    doc_id, old_id = _document_id("letter.txt"), _document_id("old.txt")
    source = f"{base}/dav/files/drafts/letter.txt"
    token = lock(base, alice, "/files/drafts/letter.txt").headers["Lock-Token"].strip("<>")
    put(client, "files/drafts/letter.txt", b"a forbidden draft", token)

    def move(destination: str) -> httpx.Response:
        # Moving releases the lock on the source (locks do not move), which checks the working copy in.
        with http(base, alice) as c:
            return c.request("MOVE", source, headers={"Destination": f"{base}/dav/files/{destination}",
                                                      "If": f"<{source}> (<{token}>)"})

    for destination in ("sent/letter.txt", "sent/old.txt"):  # to a new name, and over an existing one
        refused = move(destination)
        assert refused.status_code == 422, refused.text
    assert _names(client, "files/drafts") == ["files/drafts/letter.txt"]
    assert _names(client, "files/sent") == ["files/sent/old.txt"]
    with rest(base, alice) as api:
        doc = api.get(f"{DOCS}/{doc_id}").json()
        assert (doc["title"], doc["checked_out_by"]) == ("letter.txt", "alice")
        assert api.get(f"{DOCS}/{doc_id}/working-copy").content == b"a forbidden draft"
        assert api.get(f"{DOCS}/{old_id}").json()["state"] == "active"  # the destination was not replaced
    assert versions(base, alice, doc_id) == ["1.0"]
    with transaction(readonly=True) as s:
        assert s.get(DavLock, token) is not None  # the lock is kept with the working copy
        filed = s.execute(select(AuditEntry).where(AuditEntry.action == "document.filed",
                                                   AuditEntry.object_id == doc_id)).scalars().all()
        assert len(filed) == 1  # when it was created: no move was recorded

    put(client, "files/drafts/letter.txt", b"acceptable words", token)  # once the draft passes, the move does
    assert move("sent/letter.txt").status_code == 201
    assert _names(client, "files/drafts") == []
    assert _names(client, "files/sent") == ["files/sent/letter.txt", "files/sent/old.txt"]
    assert versions(base, alice, doc_id) == ["1.0", "1.1"]
    assert rest_content(base, alice, doc_id) == b"acceptable words"
    with rest(base, alice) as api:
        assert api.get(f"{DOCS}/{doc_id}").json()["checked_out_by"] is None
    with transaction(readonly=True) as s:
        assert s.get(DavLock, token) is None


def test_deleting_a_locked_document_discards_its_working_copy(base, alice) -> None:  # noqa: ANN001
    client = dav(base, alice)
    put(client, "files/note.txt", b"a note")
    doc_id = _document_id("note.txt")
    token = lock(base, alice, "/files/note.txt").headers["Lock-Token"].strip("<>")
    put(client, "files/note.txt", b"a draft nobody will see", token)
    with http(base, alice) as c:
        assert c.delete("/dav/files/note.txt", headers={"If": f"(<{token}>)"}).status_code == 204
    with transaction(readonly=True) as s:
        row = s.get(Document, doc_id)
        assert (row.state, row.checked_out_by, row.working_blob_key) == ("trashed", None, None)
        assert s.get(DavLock, token) is None
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "document.trashed")).scalar_one()
        assert entry.details["discarded_working_copy"] == hashlib.sha256(b"a draft nobody will see").hexdigest()
    assert versions(base, alice, doc_id) == ["1.0"]
