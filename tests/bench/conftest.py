"""Benchmarks run on demand (`pytest tests/bench -s`); each prints its figures and the ratio to a baseline."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def bench_env(tmp_path) -> dict[str, str]:  # noqa: ANN001
    """Environment for a Postroom process on the embedded default in a temp dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env.update(POSTROOM_DATA_DIR=str(tmp_path / "data"), POSTROOM_KEYRING_PATH=str(tmp_path / "keys" / "ring.json"),
               POSTROOM_MAX_UPLOAD_BYTES=str(2 * 1024**3))
    return env


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    """Run a postroom CLI command, failing loudly."""
    subprocess.run([sys.executable, "-m", "api.cli", *args], env=env, cwd=ROOT, input=stdin, text=True,
                   check=True, capture_output=True)


@pytest.fixture
def server(bench_env, request) -> Iterator[tuple[str, subprocess.Popen, dict[str, str]]]:  # noqa: ANN001
    """A real `postroom serve` on loopback with an admin user; yields (base URL, process, auth headers).

    Indirect parametrisation sets the number of server processes (default 1)."""
    workers = getattr(request, "param", 1)
    run_cli(bench_env, "db", "upgrade")
    run_cli(bench_env, "users", "create", "bench", "--role", "admin", "--password-stdin", stdin="bench-password\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", str(workers)],
                            env=bench_env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("server did not start")
    token = httpx.post(f"{base}/api/v1/auth/token", data={"username": "bench", "password": "bench-password"})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    try:
        yield base, proc, headers
    finally:
        proc.terminate()
        proc.wait(timeout=20)
