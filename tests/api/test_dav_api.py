"""WebDAV over a real HTTP server on loopback, with a real client (webdav4; LOCK and UNLOCK through httpx, which
webdav4 does not send): edit in place, versions, the folder tree, templates, Basic authentication, permissions in
pairs, and streaming."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from webdav4.client import Client, HTTPError

from api.dav._auth import credentials
from repository.db import transaction
from repository.models import AuditEntry, Document
from tests.api.helpers import DOCS, create_type
from tests.conftest import PASSWORD

LOCKINFO = ('<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
            '</D:lockscope><D:locktype><D:write/></D:locktype><D:owner>pytest</D:owner></D:lockinfo>')


@contextmanager
def running_server() -> Iterator[str]:
    """The Postroom app served by uvicorn on a free loopback port, in a thread; yields its base URL."""
    from api.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(run_worker_thread=False), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


@pytest.fixture
def base(client) -> Iterator[str]:  # noqa: ANN001  (client: migrated database, the same settings)
    """A running server on the parametrised database."""
    credentials.clear()
    with running_server() as url:
        yield url


@pytest.fixture
def alice(client, make_user):  # noqa: ANN001, ANN201
    """An author."""
    return make_user("alice", "author")


@pytest.fixture
def bob(client, make_user):  # noqa: ANN001, ANN201
    """Another author."""
    return make_user("bob", "author")


def dav(base: str, account) -> Client:  # noqa: ANN001
    """A webdav4 client on /dav signed in as the account."""
    return Client(f"{base}/dav", auth=(account.user.username, PASSWORD), retry=False)


def http(base: str, account) -> httpx.Client:  # noqa: ANN001
    """A plain HTTP client for methods webdav4 does not send, signed in with Basic auth."""
    return httpx.Client(base_url=base, auth=(account.user.username, PASSWORD), timeout=60)


def rest(base: str, account) -> httpx.Client:  # noqa: ANN001
    """The REST API as the account."""
    return httpx.Client(base_url=base, headers=account.headers, timeout=60)


def upload(base: str, account, data: bytes, filename: str = "letter.txt", document_type: str = "general") -> str:  # noqa: ANN001
    """A new document through the REST API; its id."""
    with rest(base, account) as api:
        response = api.post(DOCS, data={"title": "Letter", "document_type": document_type},
                            files={"file": (filename, data, "application/octet-stream")})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def lock(base: str, account, path: str) -> httpx.Response:  # noqa: ANN001
    """LOCK a /dav path exclusively."""
    with http(base, account) as c:
        return c.request("LOCK", f"/dav{path}", content=LOCKINFO,
                         headers={"Content-Type": "application/xml", "Timeout": "Second-3600"})


def unlock(base: str, account, path: str, token: str) -> httpx.Response:  # noqa: ANN001
    """UNLOCK a /dav path."""
    with http(base, account) as c:
        return c.request("UNLOCK", f"/dav{path}", headers={"Lock-Token": f"<{token}>"})


def put(client: Client, path: str, data: bytes, token: str | None = None) -> None:
    """PUT through webdav4 (with the lock token in an If header when given)."""
    headers = {"If": f"(<{token}>)"} if token else None
    client.upload_fileobj(BytesIO(data), path, overwrite=True, headers=headers)


def get(client: Client, path: str) -> bytes:
    """GET through webdav4."""
    buffer = BytesIO()
    client.download_fileobj(path, buffer)
    return buffer.getvalue()


def versions(base: str, account, doc_id: str) -> list[str]:  # noqa: ANN001
    """The version labels, through the REST API."""
    with rest(base, account) as api:
        return [v["version"] for v in api.get(f"{DOCS}/{doc_id}/versions").json()]


def rest_content(base: str, account, doc_id: str) -> bytes:  # noqa: ANN001
    """The current content, through the REST API."""
    with rest(base, account) as api:
        response = api.get(f"{DOCS}/{doc_id}/content")
    assert response.status_code == 200, response.text
    return response.content


def test_edit_in_place_lock_put_get_unlock(base, alice) -> None:  # noqa: ANN001
    doc_id = upload(base, alice, b"Dear Ada,\nversion one.\n")
    path = f"/documents/{doc_id}/letter.txt"
    client = dav(base, alice)
    assert [e["name"] for e in client.ls(f"documents/{doc_id}")] == [
        f"documents/{doc_id}/letter.txt", f"documents/{doc_id}/versions"]
    assert get(client, path) == b"Dear Ada,\nversion one.\n"

    locked = lock(base, alice, path)
    assert locked.status_code == 200, locked.text
    token = locked.headers["Lock-Token"].strip("<>")
    with rest(base, alice) as api:
        assert api.get(f"{DOCS}/{doc_id}").json()["checked_out_by"] == "alice"
    assert [e["name"] for e in client.ls("documents")] == [f"documents/{doc_id}"]

    edited = b"Dear Ada,\nversion one point one, edited in place.\n" * 1000
    put(client, path, edited, token)
    assert get(client, path) == edited  # the holder reopens what they saved
    assert rest_content(base, alice, doc_id) == b"Dear Ada,\nversion one.\n"  # not a version yet
    assert versions(base, alice, doc_id) == ["1.0"]

    assert unlock(base, alice, path, token).status_code == 204
    assert versions(base, alice, doc_id) == ["1.0", "1.1"]
    assert rest_content(base, alice, doc_id) == edited  # byte for byte
    with rest(base, alice) as api:
        assert api.get(f"{DOCS}/{doc_id}").json()["checked_out_by"] is None
    assert get(client, f"/documents/{doc_id}/versions/1.0/letter.txt") == b"Dear Ada,\nversion one.\n"
    assert client.ls("documents") == []


def test_unlock_without_a_save_cancels_the_checkout(base, alice) -> None:  # noqa: ANN001
    doc_id = upload(base, alice, b"unchanged")
    path = f"/documents/{doc_id}/letter.txt"
    token = lock(base, alice, path).headers["Lock-Token"].strip("<>")
    assert unlock(base, alice, path, token).status_code == 204
    assert versions(base, alice, doc_id) == ["1.0"]
    with rest(base, alice) as api:
        assert api.get(f"{DOCS}/{doc_id}").json()["checked_out_by"] is None


def test_put_without_a_lock_checks_in_the_next_minor_version(base, alice) -> None:  # noqa: ANN001
    doc_id = upload(base, alice, b"first")
    put(dav(base, alice), f"/documents/{doc_id}/letter.txt", b"second, saved by a simple client")
    assert versions(base, alice, doc_id) == ["1.0", "1.1"]
    assert rest_content(base, alice, doc_id) == b"second, saved by a simple client"


def test_lock_by_another_user_while_checked_out_is_423(base, alice, bob) -> None:  # noqa: ANN001
    doc_id = upload(base, alice, b"alice's letter")
    path = f"/documents/{doc_id}/letter.txt"
    assert lock(base, alice, path).status_code == 200
    assert lock(base, bob, path).status_code == 423
    with pytest.raises(HTTPError) as refused:
        put(dav(base, bob), path, b"bob's edit")
    assert refused.value.response.status_code == 423
    assert get(dav(base, bob), path) == b"alice's letter"  # others still read the current version


def test_checkout_through_the_api_is_respected_over_webdav(base, alice, bob) -> None:  # noqa: ANN001
    doc_id = upload(base, alice, b"checked out in the API")
    with rest(base, alice) as api:
        assert api.post(f"{DOCS}/{doc_id}/checkout").status_code == 200
    path = f"/documents/{doc_id}/letter.txt"
    assert lock(base, bob, path).status_code == 423
    put(dav(base, alice), path, b"alice's working copy")  # the holder's PUT saves her working copy
    with rest(base, alice) as api:
        assert api.get(f"{DOCS}/{doc_id}/working-copy").content == b"alice's working copy"
        assert api.post(f"{DOCS}/{doc_id}/checkin").json()["version"] == "1.1"


def test_document_permissions_in_pairs(base, client, make_user) -> None:  # noqa: ANN001
    admin = make_user("root", "admin")
    create_type(client, admin, "board-minutes", read_roles=["approver"], write_roles=["approver"])
    create_type(client, admin, "memo", read_roles=["author", "helpdesk"], write_roles=["author"])
    approver, author, helpdesk = make_user("ann", "approver"), make_user("al", "author"), make_user("hd", "helpdesk")
    secret = upload(base, approver, b"minutes", document_type="board-minutes")
    memo = upload(base, author, b"memo text", document_type="memo")

    with http(base, author) as c:  # no read: the document does not exist
        assert c.get(f"/dav/documents/{secret}/letter.txt").status_code == 404
        assert c.request("PROPFIND", f"/dav/documents/{secret}/", headers={"Depth": "0"}).status_code == 404
    with http(base, approver) as c:  # read: it does
        assert c.get(f"/dav/documents/{secret}/letter.txt").content == b"minutes"
        assert c.request("PROPFIND", f"/dav/documents/{secret}/", headers={"Depth": "0"}).status_code == 207

    path = f"/documents/{memo}/letter.txt"
    with http(base, helpdesk) as c:  # read without write: visible, so changing it is 403
        assert c.get(f"/dav{path}").content == b"memo text"
        assert c.put(f"/dav{path}", content=b"helpdesk edit").status_code == 403
    assert lock(base, helpdesk, path).status_code == 403
    with http(base, author) as c:  # write: allowed
        assert c.put(f"/dav{path}", content=b"author edit").status_code == 204
    assert versions(base, author, memo) == ["1.0", "1.1"]


def test_basic_auth_is_required_and_checked(base, alice) -> None:  # noqa: ANN001
    with httpx.Client(base_url=base) as c:
        anonymous = c.request("PROPFIND", "/dav/", headers={"Depth": "0"})
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="Postroom"'
        wrong = c.request("PROPFIND", "/dav/", headers={"Depth": "0"}, auth=("alice", "not-her-password"))
        assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic")
        garbage = c.get("/dav/", headers={"Authorization": "Basic !!!not base64"})
        assert garbage.status_code == 401
        right = c.request("PROPFIND", "/dav/", headers={"Depth": "0"}, auth=("alice", PASSWORD))
        assert right.status_code == 207
    with transaction(readonly=True) as s:  # audited like API logins; the password never is
        failed = s.execute(select(AuditEntry).where(AuditEntry.action == "auth.login_failed")).scalars().all()
        assert [e.actor for e in failed] == ["alice"]
        assert not any("not-her-password" in str(e.details) for e in s.execute(select(AuditEntry)).scalars())


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


def test_locks_and_properties_live_in_the_database(base, alice) -> None:  # noqa: ANN001
    doc_id = upload(base, alice, b"before the restart")
    path = f"/documents/{doc_id}/letter.txt"
    token = lock(base, alice, path).headers["Lock-Token"].strip("<>")
    proppatch = ('<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:t="urn:test"><D:set><D:prop>'
                 '<t:colour>blue</t:colour></D:prop></D:set></D:propertyupdate>')
    with http(base, alice) as c:
        assert c.request("PROPPATCH", f"/dav{path}", content=proppatch,
                         headers={"If": f"(<{token}>)"}).status_code == 207
    with running_server() as other:  # another process (or a restarted one) sees the lock and the property
        put(dav(other, alice), path, b"after the restart", token)
        with http(other, alice) as c:
            found = c.request("PROPFIND", f"/dav{path}", headers={"Depth": "0"},
                              content='<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>'
                                      '<t:colour xmlns:t="urn:test"/></D:prop></D:propfind>')
        assert "blue" in found.text
        assert unlock(other, alice, path, token).status_code == 204
    assert versions(base, alice, doc_id) == ["1.0", "1.1"]
    assert rest_content(base, alice, doc_id) == b"after the restart"


def test_older_versions_are_read_only(base, alice) -> None:  # noqa: ANN001
    doc_id = upload(base, alice, b"one")
    put(dav(base, alice), f"/documents/{doc_id}/letter.txt", b"two")
    old = f"/dav/documents/{doc_id}/versions/1.0/letter.txt"
    with http(base, alice) as c:
        assert c.get(old).content == b"one"
        assert c.put(old, content=b"rewrite history").status_code == 403
        assert c.request("LOCK", old, content=LOCKINFO).status_code == 403
        assert c.delete(old).status_code == 403
        assert c.get(f"/dav/documents/{doc_id}/versions/9.9/letter.txt").status_code == 404


def test_a_large_document_is_streamed(base, alice) -> None:  # noqa: ANN001
    size = 20 * 1024 * 1024
    data = hashlib.sha256(b"seed").digest() * (size // 32)
    doc_id = upload(base, alice, data, filename="big.bin")
    digest = hashlib.sha256()
    received = 0
    tracemalloc.start()
    try:
        with http(base, alice) as c, c.stream("GET", f"/dav/documents/{doc_id}/big.bin") as response:
            assert response.status_code == 200
            assert response.headers["content-length"] == str(size)
            for chunk in response.iter_bytes():
                digest.update(chunk)
                received += len(chunk)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == size and digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert peak < size // 2, f"peak memory {peak} bytes while sending {size}: the content was read whole"
