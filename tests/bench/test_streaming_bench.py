"""Streaming 1 GiB through the HTTP API: server memory stays flat and throughput is compared with a disk copy.

Targets (issue 2): peak RSS growth of the server under 100 MiB; upload and download each at no less than half
the throughput of copying the same file on the same disk (copy + fsync, as the store makes content durable).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

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


def _curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--fail-with-body", *args], capture_output=True, text=True, check=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _loop_copy_seconds(src: Path, dst: Path) -> float:
    """A copy through user space (read and write 1 MiB at a time, then fsync), for context."""
    start = time.perf_counter()
    with src.open("rb", buffering=0) as s, dst.open("wb", buffering=0) as d:
        while block := s.read(BLOCK):
            d.write(block)
        os.fsync(d.fileno())
    seconds = time.perf_counter() - start
    dst.unlink()
    return seconds


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
    loop = _loop_copy_seconds(src, tmp_path / "loop.bin")

    # curl is the client: a Python client on the same two cores would measure itself more than the server.
    auth = ["-H", f"Authorization: {headers['Authorization']}"]
    with RssSampler(proc.pid) as up_rss:
        start = time.perf_counter()
        done = _curl(*auth, "-F", f"file=@{src}", "-F", "title=one GiB", "-F", "document_type=general",
                     f"{base}/api/v1/documents")
        upload = time.perf_counter() - start
    created = json.loads(done.stdout)
    assert created["sha256"] == expected, done.stdout

    out = tmp_path / "down.bin"
    with RssSampler(proc.pid) as down_rss:
        start = time.perf_counter()
        _curl(*auth, "-o", str(out), f"{base}/api/v1/documents/{created['id']}/content")
        with out.open("rb+") as f:
            os.fsync(f.fileno())
        download = time.perf_counter() - start
    assert _sha256(out) == expected

    up_rate, down_rate = GIB / upload / BLOCK, GIB / download / BLOCK
    print(f"\ncopy+fsync of 1 GiB on the same disk: {copy:.2f} s ({copy_rate:.0f} MiB/s); "
          f"through user space (read/write loop + fsync): {loop:.2f} s ({GIB / loop / BLOCK:.0f} MiB/s)")
    print(f"upload:   {upload:.2f} s ({up_rate:.0f} MiB/s), ratio to copy {up_rate / copy_rate:.2f}, "
          f"server RSS growth {up_rss.growth_mib:.1f} MiB")
    print(f"download: {download:.2f} s ({down_rate:.0f} MiB/s), ratio to copy {down_rate / copy_rate:.2f}, "
          f"server RSS growth {down_rss.growth_mib:.1f} MiB")
    assert up_rss.growth_mib < 100 and down_rss.growth_mib < 100
    assert up_rate >= copy_rate / 2, "upload is slower than half a disk copy"
    assert down_rate >= copy_rate / 2, "download is slower than half a disk copy"
