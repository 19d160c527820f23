"""Ingest of 100 KiB documents on the embedded default: service layer and HTTP API, against fsync'd writes.

Targets (issue 2): service layer >= 300 documents/s, HTTP API >= 150 documents/s.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

SIZE = 100 * 1024
N_SERVICE = 600
N_HTTP = 600


def _baseline_fsync_writes(directory: Path, payloads: list[bytes]) -> float:
    """Seconds to write each payload to its own file with fsync (and rename + directory fsync, as the store does)."""
    directory.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for i, data in enumerate(payloads):
        tmp = directory / f".tmp-{i}"
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.rename(directory / str(i))
        fd = os.open(directory, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return time.perf_counter() - start


def _payloads(n: int) -> list[bytes]:
    return [os.urandom(SIZE) for _ in range(n)]


def _report(name: str, n: int, seconds: float, baseline: float, target: float) -> float:
    rate, base_rate = n / seconds, n / baseline
    print(f"\n{name}: {rate:.0f} documents/s ({n} x 100 KiB in {seconds:.2f} s); "
          f"fsync'd file writes: {base_rate:.0f}/s; ratio {rate / base_rate:.2f}; target {target:.0f}/s")
    return rate


def test_service_layer_ingest(monkeypatch, tmp_path) -> None:  # noqa: ANN001
    from repository import identity, runtime, service
    from repository.content import stage_stream
    from repository.db import get_engine, transaction
    from repository.migrate import upgrade
    from tests.conftest import configure

    configure(monkeypatch, tmp_path)
    upgrade(get_engine())
    with transaction() as s:
        user = identity.create_user(s, username="bench", password="bench-password", roles=["author"], actor="bench")
        s.flush()
        s.expunge(user)
    settings = runtime.get_runtime().settings
    payloads = _payloads(N_SERVICE)
    baseline = _baseline_fsync_writes(tmp_path / "baseline", payloads)
    start = time.perf_counter()
    for i, data in enumerate(payloads):
        staged = stage_stream(iter([data]), max_bytes=settings.max_upload_bytes, tmp_dir=settings.tmp_dir)
        with transaction() as s:
            service.create_document(s, actor=user, title=f"bench {i}", document_type="general", content=staged)
    seconds = time.perf_counter() - start
    rate = _report("service-layer ingest", N_SERVICE, seconds, baseline, 300)
    get_engine().dispose()
    runtime.reset()
    assert rate >= 300, f"service-layer ingest {rate:.0f}/s is under the 300/s target"


@pytest.mark.parametrize("server", [1, 2], indirect=True, ids=["1-process", "2-processes"])
def test_http_api_ingest(server, tmp_path, request) -> None:  # noqa: ANN001
    clients = 4
    base, _proc, headers = server
    payloads = _payloads(N_HTTP)
    baseline = _baseline_fsync_writes(tmp_path / "baseline", payloads)

    def upload(chunk: list[tuple[int, bytes]]) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            for i, data in chunk:
                r = http.post("/api/v1/documents", files={"file": (f"f{i}.bin", data)},
                              data={"title": f"bench {i}", "document_type": "general"})
                assert r.status_code == 201, r.text

    work = list(enumerate(payloads))
    parts = [work[k::clients] for k in range(clients)]
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(upload, parts))
    seconds = time.perf_counter() - start
    rate = _report(f"HTTP API ingest ({request.node.callspec.id}, {clients} clients)", N_HTTP, seconds, baseline, 150)
    assert rate >= 150, f"HTTP ingest {rate:.0f}/s is under the 150/s target"
