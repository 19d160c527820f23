"""The litmus WebDAV compliance suite (Debian package `litmus`, installed by ops/test-tools.sh) against /dav/files/
of a real `postroom serve` on loopback: the basic, copymove, props and locks suites must pass, except tests listed
in ALLOWED_FAILURES with the reason a versioned repository cannot pass them."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import service_missing

pytestmark = [pytest.mark.litmus, pytest.mark.slow]

SUITES = ("basic", "copymove", "props", "locks")
USER, PASSWORD = "litmus", "litmus-password-1"
# (suite, test) -> why it cannot pass against a versioned repository. Empty: every test of the four suites
# passes. (basic/delete_fragment passes with a warning that wsgidav itself gives: a DELETE whose URL carries a
# #fragment deletes the collection, because the fragment never reaches the server.)
ALLOWED_FAILURES: dict[tuple[str, str], str] = {}

_SUITE = re.compile(r"^-> running `(\w+)'")
_TEST = re.compile(r"^\s*(\d+)\.\s+(\w+)\.{2,}")
_RESULT = re.compile(r"\b(pass|FAIL|SKIPPED)\b")
_SUMMARY = re.compile(r"^<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed")


def parse(output: str) -> tuple[list[tuple[str, str, str]], dict[str, tuple[int, int]], list[str]]:
    """Litmus output as (suite, test, line) failures, per-suite (run, failed) counts and warnings."""
    failures, summaries, warnings = [], {}, []
    suite = test = ""
    for line in output.splitlines():
        if m := _SUITE.match(line):
            suite = m.group(1)
            continue
        if m := _SUMMARY.match(line):
            summaries[m.group(1)] = (int(m.group(2)), int(m.group(4)))
            continue
        if m := _TEST.match(line):
            test = m.group(2)
        if "WARNING:" in line:
            warnings.append(f"{suite}/{test}: {line.strip()}")
        result = _RESULT.search(line.split("..", 1)[-1]) if test else None
        if result and result.group(1) != "pass":
            failures.append((suite, test, line.strip()))
    return failures, summaries, warnings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    """`postroom serve` on a fresh data directory, with a user for litmus; yields the /dav/files/ URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env.update(POSTROOM_DATA_DIR=str(tmp_path / "data"), POSTROOM_KEYRING_PATH=str(tmp_path / "keys" / "keyring.json"),
               POSTROOM_RUN_WORKER_IN_SERVE="false")
    postroom = [sys.executable, "-m", "api.cli"]
    root = Path(__file__).resolve().parents[2]
    subprocess.run([*postroom, "db", "upgrade"], env=env, cwd=root, check=True, capture_output=True, timeout=120)
    subprocess.run([*postroom, "users", "create", USER, "--role", "author", "--password-stdin"], env=env,
                   cwd=root, input=PASSWORD + "\n", text=True, check=True, capture_output=True, timeout=120)
    port = _free_port()
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen([*postroom, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=root,
                               stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "postroom serve did not start"
            time.sleep(0.2)
        yield f"{base}/dav/files/"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_litmus_basic_copymove_props_locks(server, tmp_path) -> None:  # noqa: ANN001
    litmus = shutil.which("litmus")
    if litmus is None:
        service_missing("litmus", "the litmus command is not installed (ops/test-tools.sh installs it)")
    work = tmp_path / "litmus"
    work.mkdir()
    run = subprocess.run([litmus, "--keep-going", server, USER, PASSWORD], cwd=work, capture_output=True, text=True,
                         env={**os.environ, "TESTS": " ".join(SUITES)}, timeout=900)
    output = run.stdout + run.stderr
    failures, summaries, warnings = parse(output)
    for warning in warnings:
        print("litmus", warning)
    assert sorted(summaries) == sorted(SUITES), f"not every suite ran:\n{output}"
    unexpected = [f for f in failures if (f[0], f[1]) not in ALLOWED_FAILURES]
    debug = Path(work / "debug.log")
    assert not unexpected, (
        "litmus failures:\n" + "\n".join(f"{s}/{t}: {line}" for s, t, line in unexpected)
        + f"\n\n{output}\n\ndebug.log (tail):\n{debug.read_text(errors='replace')[-4000:] if debug.exists() else ''}"
    )
    allowed = sum(1 for f in failures if (f[0], f[1]) in ALLOWED_FAILURES)
    assert sum(failed for _run, failed in summaries.values()) == allowed, output


def test_litmus_output_is_parsed() -> None:
    sample = (
        "-> running `basic':\n"
        " 3. put_get...............  3. put_get............... pass\n"
        " 9. delete_fragment....... WARNING: DELETE removed collection resource; unsafe\n"
        "    ...................... pass (with 1 warning)\n"
        "<- summary for `basic': of 16 tests run: 16 passed, 0 failed. 100.0%\n"
        "-> running `copymove':\n"
        " 7. copy_coll.............  7. copy_coll............. FAIL (COPY-on-existing-coll: 409 Conflict\n"
        "http://x/foo.0: 409 Conflict)\n"
        " 8. copy_shallow..........  8. copy_shallow.......... SKIPPED\n"
        "<- summary for `copymove': of 13 tests run: 11 passed, 2 failed. 84.6%\n"
    )
    failures, summaries, warnings = parse(sample)
    assert [(s, t) for s, t, _line in failures] == [("copymove", "copy_coll"), ("copymove", "copy_shallow")]
    assert summaries == {"basic": (16, 0), "copymove": (13, 2)}
    assert warnings and warnings[0].startswith("basic/delete_fragment")
