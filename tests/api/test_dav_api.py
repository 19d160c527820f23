"""WebDAV editing of documents over a real HTTP server on loopback, with a real client (webdav4; LOCK and UNLOCK
through httpx, which webdav4 does not send): check-out, working copy and check-in, versions, Basic authentication,
permissions in pairs, limits and streaming. The folder tree and templates are in test_dav_files_api.py."""

from __future__ import annotations

import datetime as dt
import hashlib
import tracemalloc

import httpx
import pytest
from sqlalchemy import select, update
from webdav4.client import HTTPError

from repository.db import transaction
from repository.models import AuditEntry, DavLock, Document
from repository.types import utcnow
from tests.api import dav_support
from tests.api.dav_support import (
    LOCKINFO,
    dav,
    get,
    http,
    lock,
    put,
    rest,
    rest_content,
    running_server,
    unlock,
    upload,
    versions,
)
from tests.api.helpers import DOCS, create_type, stored_files
from tests.conftest import PASSWORD

alice, base, bob = dav_support.alice, dav_support.base, dav_support.bob  # fixtures


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


def test_a_verified_credential_is_remembered_briefly(base, alice, monkeypatch) -> None:  # noqa: ANN001
    from repository import identity

    calls = []
    real = identity.check_credentials

    def counting(session, **kwargs):  # noqa: ANN001, ANN202
        calls.append(kwargs["username"])
        return real(session, **kwargs)

    monkeypatch.setattr(identity, "check_credentials", counting)
    with http(base, alice) as c:
        for _ in range(5):
            assert c.request("PROPFIND", "/dav/", headers={"Depth": "0"}).status_code == 207
    assert calls == ["alice"]  # one argon2 verification for five requests
    with httpx.Client(base_url=base, auth=("alice", "wrong-password")) as c:
        assert c.request("PROPFIND", "/dav/", headers={"Depth": "0"}).status_code == 401
    assert calls == ["alice", "alice"]  # a different credential is verified, not served from the cache


def test_put_over_the_upload_limit_is_413_and_leaves_nothing(client, alice, monkeypatch) -> None:  # noqa: ANN001
    from repository import runtime

    monkeypatch.setenv("POSTROOM_MAX_UPLOAD_BYTES", "1000")
    runtime.reset()
    with running_server() as base:
        doc_id = upload(base, alice, b"small")
        before = stored_files()
        with http(base, alice) as c:
            assert c.put(f"/dav/documents/{doc_id}/letter.txt", content=b"x" * 5000).status_code == 413
            assert c.put("/dav/files/new.txt", content=b"y" * 5000).status_code == 413
            chunked = c.put(f"/dav/documents/{doc_id}/letter.txt", content=iter([b"z" * 600, b"z" * 600]))
            assert chunked.status_code == 413  # no length declared: refused as the limit is passed
        assert versions(base, alice, doc_id) == ["1.0"]
        assert stored_files() == before
        assert dav(base, alice).ls("files") == []


def test_a_checkout_broken_through_the_api_voids_the_lock(base, alice, make_user) -> None:  # noqa: ANN001
    admin = make_user("root", "admin")
    doc_id = upload(base, alice, b"alice's letter")
    path = f"/documents/{doc_id}/letter.txt"
    token = lock(base, alice, path).headers["Lock-Token"].strip("<>")
    put(dav(base, alice), path, b"alice's unsaved draft", token)
    with rest(base, admin) as api:
        assert api.delete(f"{DOCS}/{doc_id}/checkout", params={"reason": "alice is away"}).status_code == 204
    assert unlock(base, alice, path, token).status_code == 409  # the lock went with the check-out
    assert lock(base, admin, path).status_code == 200  # and someone else may lock now
    assert versions(base, alice, doc_id) == ["1.0"]
    assert get(dav(base, admin), path) == b"alice's letter"  # the draft was discarded with the check-out


@pytest.mark.parametrize("ending", ["cancelled", "broken", "checked in"])
def test_a_stale_lock_token_is_refused_after_the_same_user_checks_out_again(base, alice, make_user,  # noqa: ANN001
                                                                           ending: str) -> None:
    admin = make_user("root", "admin")
    doc_id = upload(base, alice, b"version one")
    path = f"/documents/{doc_id}/letter.txt"
    stale = lock(base, alice, path).headers["Lock-Token"].strip("<>")
    put(dav(base, alice), path, b"a draft under the old lock", stale)
    with rest(base, alice) as api, rest(base, admin) as boss:
        if ending == "cancelled":
            assert api.delete(f"{DOCS}/{doc_id}/checkout").status_code == 204
        elif ending == "broken":
            assert boss.delete(f"{DOCS}/{doc_id}/checkout", params={"reason": "alice is away"}).status_code == 204
        else:
            assert api.post(f"{DOCS}/{doc_id}/checkin").status_code == 201
        # alice checks out again long before the old lock would have expired, and saves a new draft
        assert api.post(f"{DOCS}/{doc_id}/checkout").status_code == 200
        assert api.put(f"{DOCS}/{doc_id}/working-copy",
                       files={"file": ("letter.txt", b"the new draft", "application/octet-stream")}).status_code == 200
    before = versions(base, alice, doc_id)
    with transaction(readonly=True) as s:
        assert s.get(DavLock, stale) is None  # deleted with the check-out it belonged to, not merely hidden

    # A client still holding the old token can neither check the new draft in nor save over it.
    assert unlock(base, alice, path, stale).status_code == 409
    with http(base, alice) as c:
        saved = c.put(f"/dav{path}", content=b"the stale client's save", headers={"If": f"(<{stale}>)"})
    assert saved.status_code == 412
    assert versions(base, alice, doc_id) == before
    with rest(base, alice) as api:
        assert api.get(f"{DOCS}/{doc_id}").json()["checked_out_by"] == "alice"
        assert api.get(f"{DOCS}/{doc_id}/working-copy").content == b"the new draft"


def test_another_users_checkout_after_expiry_deletes_the_old_locks(base, alice, bob) -> None:  # noqa: ANN001
    doc_id = upload(base, alice, b"version one")
    path = f"/documents/{doc_id}/letter.txt"
    stale = lock(base, alice, path).headers["Lock-Token"].strip("<>")
    put(dav(base, alice), path, b"alice's draft", stale)
    with transaction() as s:  # alice's check-out runs out
        s.execute(update(Document).where(Document.id == doc_id)
                  .values(lock_expires_at=utcnow() - dt.timedelta(seconds=1)))
    with rest(base, bob) as api:
        assert api.post(f"{DOCS}/{doc_id}/checkout").status_code == 200
    with transaction(readonly=True) as s:
        assert s.get(DavLock, stale) is None
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "document.checked_out")
                          .order_by(AuditEntry.seq.desc())).scalars().first()
        assert entry.actor == "bob" and entry.details["previous_holder"] == "alice"
        assert entry.details["discarded_working_copy"] == hashlib.sha256(b"alice's draft").hexdigest()
    assert unlock(base, alice, path, stale).status_code == 409
    assert get(dav(base, bob), path) == b"version one"  # alice's draft is not bob's
