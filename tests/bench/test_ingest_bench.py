"""Ingest of 100 KiB documents on the embedded default: service layer and HTTP API, against fsync'd writes.

Targets (issue 2): service layer >= 300 documents/s, HTTP API >= 150 documents/s. The service layer has two ways
in: one document per transaction (`create_document`, what an upload does), measured for context, and many
documents per transaction (`create_documents`, what `postroom documents import` and a letter batch do), which
carries the target. Likewise over HTTP: one document a request for context, `POST /api/v1/documents/batch` for
the target.
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
CHUNK = 100
HTTP_BATCH = 50


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


def _in_client_threads(upload, work: list, clients: int) -> float:  # noqa: ANN001
    """Seconds for `clients` threads to run `upload` over every clients-th item of `work` each."""
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(upload, [work[k::clients] for k in range(clients)]))
    return time.perf_counter() - start


def _report(name: str, n: int, seconds: float, baseline: float, target: float) -> float:
    rate, base_rate = n / seconds, n / baseline
    print(f"\n{name}: {rate:.0f} documents/s ({n} x 100 KiB in {seconds:.2f} s); "
          f"fsync'd file writes: {base_rate:.0f}/s; ratio {rate / base_rate:.2f}; target {target:.0f}/s")
    return rate


@pytest.fixture
def author(monkeypatch, tmp_path):  # noqa: ANN001, ANN201
    """A migrated embedded default in tmp_path and an author (detached)."""
    from repository import identity, runtime
    from repository.db import get_engine, transaction
    from repository.migrate import upgrade
    from tests.conftest import configure

    configure(monkeypatch, tmp_path)
    upgrade(get_engine())
    with transaction() as s:
        user = identity.create_user(s, username="bench", password="bench-password", roles=["author"], actor="bench")
        s.flush()
        s.expunge(user)
    yield user
    get_engine().dispose()
    runtime.reset()


def _stage(data: bytes):  # noqa: ANN202
    from repository import runtime
    from repository.content import stage_stream

    settings = runtime.get_runtime().settings
    return stage_stream(iter([data]), max_bytes=settings.max_upload_bytes, tmp_dir=settings.tmp_dir)


def test_service_layer_ingest_one_transaction_per_document(author, tmp_path) -> None:  # noqa: ANN001
    """For context: each document commits on its own, so each pays a commit and a blob fsync of its own."""
    from repository import service
    from repository.db import transaction

    payloads = _payloads(N_SERVICE)
    baseline = _baseline_fsync_writes(tmp_path / "baseline", payloads)
    start = time.perf_counter()
    for i, data in enumerate(payloads):
        with transaction() as s:
            service.create_document(s, actor=author, title=f"bench {i}", document_type="general",
                                    content=_stage(data))
    seconds = time.perf_counter() - start
    _report("service-layer ingest, one transaction per document", N_SERVICE, seconds, baseline, 300)


def test_service_layer_ingest_in_chunks(author, tmp_path) -> None:  # noqa: ANN001
    """The target: `create_documents`, CHUNK documents per transaction (the blobs' fsyncs overlap)."""
    from repository import service
    from repository.db import transaction

    payloads = _payloads(N_SERVICE)
    baseline = _baseline_fsync_writes(tmp_path / "baseline", payloads)
    start = time.perf_counter()
    for first in range(0, N_SERVICE, CHUNK):
        items = [service.NewDocument(title=f"bench {i}", content=_stage(data))
                 for i, data in enumerate(payloads[first:first + CHUNK], first)]
        with transaction() as s:
            service.create_documents(s, actor=author, document_type="general", items=items)
    seconds = time.perf_counter() - start
    rate = _report(f"service-layer ingest, {CHUNK} documents per transaction", N_SERVICE, seconds, baseline, 300)
    assert rate >= 300, f"service-layer ingest {rate:.0f}/s is under the 300/s target"


def test_import_of_files_from_disk(author, tmp_path) -> None:  # noqa: ANN001
    """For context: `postroom documents import`'s service function, reading each file from disk."""
    from repository.service.file_import import import_files, source_files

    payloads = _payloads(N_SERVICE)
    source = tmp_path / "source"
    source.mkdir()
    for i, data in enumerate(payloads):
        (source / f"{i:04}.bin").write_bytes(data)
    baseline = _baseline_fsync_writes(tmp_path / "baseline", payloads)
    start = time.perf_counter()
    report = import_files(source_files([source]), actor=author, document_type="general", chunk_size=CHUNK)
    seconds = time.perf_counter() - start
    assert len(report.imported) == N_SERVICE and not report.rejected
    _report("documents import from disk", N_SERVICE, seconds, baseline, 300)


@pytest.mark.parametrize("server", [1, 2], indirect=True, ids=["1-process", "2-processes"])
def test_http_api_ingest(server, tmp_path, request) -> None:  # noqa: ANN001
    """For context: one document per request (the batch endpoint below carries the target)."""
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

    seconds = _in_client_threads(upload, list(enumerate(payloads)), clients)
    _report(f"HTTP API ingest, one document a request ({request.node.callspec.id}, {clients} clients)", N_HTTP,
            seconds, baseline, 150)


@pytest.mark.parametrize("server", [1, 2], indirect=True, ids=["1-process", "2-processes"])
def test_http_api_batch_ingest(server, tmp_path, request) -> None:  # noqa: ANN001
    """`POST /api/v1/documents/batch`, HTTP_BATCH documents a request, from 4 client threads."""
    clients = 4
    base, _proc, headers = server
    payloads = _payloads(N_HTTP)
    baseline = _baseline_fsync_writes(tmp_path / "baseline", payloads)
    requests = [list(enumerate(payloads))[i:i + HTTP_BATCH] for i in range(0, N_HTTP, HTTP_BATCH)]

    def upload(batches: list[list[tuple[int, bytes]]]) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
            for batch in batches:
                r = http.post("/api/v1/documents/batch", data={"document_type": "general"},
                              files=[("file", (f"f{i}.bin", data)) for i, data in batch])
                assert r.status_code == 201, r.text

    seconds = _in_client_threads(upload, requests, clients)
    rate = _report(f"HTTP API batch ingest ({request.node.callspec.id}, {HTTP_BATCH} a request, {clients} clients)",
                   N_HTTP, seconds, baseline, 150)
    assert rate >= 150, f"HTTP batch ingest {rate:.0f}/s is under the 150/s target"
