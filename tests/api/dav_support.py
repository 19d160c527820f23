"""A real Postroom server on loopback for WebDAV tests, and small helpers around webdav4 and httpx."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO

import httpx
import pytest
import uvicorn
from webdav4.client import Client

from api.dav._auth import credentials
from tests.api.helpers import DOCS
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
