"""Oversized request lines and headers get 431 problem details, through the app and from a real server."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.api.helpers import DOCS, assert_problem

MiB = 1024 * 1024


def test_oversized_header_is_431(client, author) -> None:
    response = client.get(DOCS, headers={**author.headers, "X-Padding": "a" * (20 * 1024)})
    assert_problem(response, 431, "limit")


def test_header_under_the_limit_is_served(client, author) -> None:
    response = client.get(DOCS, headers={**author.headers, "X-Padding": "a" * (8 * 1024)})
    assert response.status_code == 200


def test_oversized_url_is_431(client, author) -> None:
    assert_problem(client.get(DOCS, params={"cursor": "a" * (20 * 1024)}, headers=author.headers), 431)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raw_get(port: int, extra: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + extra + b"\r\n")
        return s.recv(64)


@pytest.mark.slow
def test_real_server_refuses_oversized_headers(sqlite_only, tmp_path) -> None:
    """`postroom serve` (uvicorn with its default HTTP parser) answers 4xx to a 1 MiB header and keeps serving."""
    port = _free_port()
    env = {**os.environ, "POSTROOM_DATA_DIR": str(tmp_path / "serve-data"),
           "POSTROOM_KEYRING_PATH": str(tmp_path / "serve-keys" / "keyring.json"),
           "POSTROOM_RUN_WORKER_IN_SERVE": "false"}
    env.pop("POSTROOM_DATABASE_URL", None)
    server = subprocess.Popen([str(Path(sys.executable).parent / "postroom"), "serve", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                first = _raw_get(port)
                break
            except OSError:
                assert time.monotonic() < deadline, "postroom serve did not start"
                time.sleep(0.2)
        assert first.startswith(b"HTTP/1.1 200")
        refused = _raw_get(port, b"X-Padding: " + b"a" * MiB + b"\r\n")
        assert re.match(rb"HTTP/1\.1 4\d\d", refused), refused
        assert _raw_get(port).startswith(b"HTTP/1.1 200")
    finally:
        server.terminate()
        server.wait(timeout=30)
