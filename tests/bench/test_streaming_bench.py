"""Streaming 1 GiB through the HTTP API: server memory stays flat and throughput is compared with a disk copy.

Targets (issue 2): peak RSS growth of the server under 100 MiB; upload and download each at no less than half
the throughput of copying the same file on the same disk (copy + fsync, as the store makes content durable).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import psutil

GIB = 1024**3
BLOCK = 1024 * 1024


class RssSampler:
    """Samples a process's resident set size every 20 ms and keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.start_rss = self.proc.memory_info().rss
        self.peak = self.start_rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        """Peak growth over the starting RSS, in MiB."""
        return (self.peak - self.start_rss) / BLOCK


def _make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    blocks = [os.urandom(BLOCK) for _ in range(16)]
    with path.open("wb") as f:
        for i in range(size // BLOCK):
            block = blocks[i % 16][:-8] + i.to_bytes(8, "big")
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


def _copy_seconds(src: Path, dst: Path) -> float:
    start = time.perf_counter()
    shutil.copyfile(src, dst)
    with dst.open("rb+") as f:
        os.fsync(f.fileno())
    seconds = time.perf_counter() - start
    dst.unlink()
    return seconds


def test_one_gib_upload_and_download_stream(server, tmp_path) -> None:  # noqa: ANN001
    base, proc, headers = server
    src = tmp_path / "big.bin"
    expected = _make_file(src, GIB)
    os.sync()
    copy = _copy_seconds(src, tmp_path / "copy.bin")
    copy_rate = GIB / copy / BLOCK

    with RssSampler(proc.pid) as up_rss, src.open("rb") as f, httpx.Client(timeout=600) as http:
        start = time.perf_counter()
        r = http.post(f"{base}/api/v1/documents", headers=headers, files={"file": ("big.bin", f)},
                      data={"title": "one GiB", "document_type": "general"})
        upload = time.perf_counter() - start
    assert r.status_code == 201, r.text
    assert r.json()["sha256"] == expected

    out = tmp_path / "down.bin"
    digest = hashlib.sha256()
    with RssSampler(proc.pid) as down_rss, httpx.Client(timeout=600) as http, out.open("wb") as sink:
        start = time.perf_counter()
        with http.stream("GET", f"{base}/api/v1/documents/{r.json()['id']}/content", headers=headers) as resp:
            assert resp.status_code == 200
            for chunk in resp.iter_raw(BLOCK):
                digest.update(chunk)
                sink.write(chunk)
            sink.flush()
            os.fsync(sink.fileno())
        download = time.perf_counter() - start
    assert digest.hexdigest() == expected

    up_rate, down_rate = GIB / upload / BLOCK, GIB / download / BLOCK
    print(f"\ncopy+fsync of 1 GiB on the same disk: {copy:.2f} s ({copy_rate:.0f} MiB/s)")
    print(f"upload:   {upload:.2f} s ({up_rate:.0f} MiB/s), ratio to copy {up_rate / copy_rate:.2f}, "
          f"server RSS growth {up_rss.growth_mib:.1f} MiB")
    print(f"download: {download:.2f} s ({down_rate:.0f} MiB/s), ratio to copy {down_rate / copy_rate:.2f}, "
          f"server RSS growth {down_rss.growth_mib:.1f} MiB")
    assert up_rss.growth_mib < 100 and down_rss.growth_mib < 100
    assert up_rate >= copy_rate / 2, "upload is slower than half a disk copy"
    assert down_rate >= copy_rate / 2, "download is slower than half a disk copy"
