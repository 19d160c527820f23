"""One unoserver process (a Python XML-RPC server driving one LibreOffice) on two loopback ports.

The server runs under a Python that has LibreOffice's `uno` module (the system python3), with a PYTHONPATH
holding only a link to the `unoserver` package installed in Postroom's own environment, so server and client
are always the same pinned version and nothing else of the venv leaks into the system Python.

Calls go over XML-RPC with a socket timeout of our own rather than through `unoserver.client.UnoClient`:
UnoClient has no timeout and sleeps 10 s between five connection retries, which would turn a crashed worker
into a 40 s stall instead of a quick replacement.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import time
import xmlrpc.client
from pathlib import Path

import unoserver
from unoserver.client import API_VERSION

from output.compose.office_profile import preload_env, prepare_profile

START_TIMEOUT_S = 90.0


class WorkerDiedError(Exception):
    """The worker's process (or its LibreOffice) is gone or stopped answering."""


class WorkerTimeoutError(Exception):
    """The call took longer than its timeout."""


class DocumentRefusedError(Exception):
    """LibreOffice answered, with an error about the document."""


class _Transport(xmlrpc.client.Transport):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host: str) -> http.client.HTTPConnection:  # type: ignore[override]
        conn = super().make_connection(host)
        conn.timeout = self._timeout
        return conn


def server_pythonpath(runtime: Path) -> Path:
    """A directory holding only a link to our unoserver package (for the system Python's PYTHONPATH)."""
    lib = runtime / "pylib"
    link = lib / "unoserver"
    if not link.exists():
        lib.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            link.symlink_to(Path(unoserver.__file__).resolve().parent, target_is_directory=True)
        # unoserver reads its own version from the installed distribution's metadata.
        for dist in Path(unoserver.__file__).resolve().parent.parent.glob("unoserver-*.dist-info"):
            with contextlib.suppress(FileExistsError):
                (lib / dist.name).symlink_to(dist, target_is_directory=True)
    return lib


def _group_pids(pgid: int) -> list[tuple[int, str]]:
    """(pid, command name) of every live process in a process group (Linux /proc)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append((int(entry.name), name))
    return found


class Worker:
    """A supervised unoserver process; not thread-safe: the pool hands it to one caller at a time."""

    def __init__(self, *, index: int, port: int, runtime: Path, soffice: str, python: str,
                 allocator: str | None = None) -> None:
        self.index = index
        self.port = port
        self.dir = runtime / f"worker-{index}"
        self._runtime = runtime
        self._soffice = soffice
        self._python = python
        self._allocator = allocator
        self.proc: subprocess.Popen[bytes] | None = None
        self.conversions = 0
        self.total_conversions = 0
        self.restarts = 0
        self.started_at = 0.0

    @property
    def pid(self) -> int | None:
        """The unoserver process id (it leads a process group holding LibreOffice)."""
        return self.proc.pid if self.proc else None

    def soffice_pid(self) -> int | None:
        """The LibreOffice process (soffice.bin) serving this worker, if it is running."""
        if self.proc is None:
            return None
        for pid, name in _group_pids(self.proc.pid):
            if name == "soffice.bin":
                return pid
        return None

    def alive(self) -> bool:
        """Both the unoserver process and its LibreOffice are running."""
        return self.proc is not None and self.proc.poll() is None and self.soffice_pid() is not None

    def start(self) -> None:
        """Start the process and wait until it answers; raises WorkerDiedError when it does not in time."""
        profile = self.dir / "profile"
        tmp = self.dir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        prepare_profile(profile)
        env = preload_env({**os.environ, "PYTHONPATH": str(server_pythonpath(self._runtime)), "HOME": str(self.dir)},
                          self._allocator)
        cmd = [self._python, "-m", "unoserver.server", "--interface", "127.0.0.1", "--uno-interface", "127.0.0.1",
               "--port", str(self.port), "--uno-port", str(self.port + 1), "--executable", self._soffice,
               "--user-installation", str(profile), "--temp-dir", str(tmp), "--quiet"]
        log = (self.dir / "unoserver.log").open("ab")
        try:
            # Its own session, so stop() can end LibreOffice too by signalling the whole group.
            proc = self.proc = subprocess.Popen(  # noqa: S603 (our own argv)
                cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        finally:
            log.close()
        self.conversions = 0
        self.started_at = time.monotonic()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None or self.proc is not proc:
                break
            with contextlib.suppress(WorkerDiedError, WorkerTimeoutError):
                self.ping(timeout_s=2.0)
                return
            time.sleep(0.25)
        tail = self.log_tail()
        self.stop()
        raise WorkerDiedError(f"unoserver on port {self.port} did not start: {tail}")

    def stop(self) -> None:
        """End the process group (unoserver and LibreOffice), hard after a short grace."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
                if not _group_pids(proc.pid):
                    break
            except subprocess.TimeoutExpired:
                continue
            deadline = time.monotonic() + wait
            while _group_pids(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _group_pids(proc.pid):
                break

    def restart(self) -> None:
        """Replace the process with a fresh one (same ports, profile kept: it is only a cache)."""
        self.stop()
        self.restarts += 1
        self.start()

    def log_tail(self, size: int = 600) -> str:
        """The end of the worker's log, for error messages."""
        try:
            return (self.dir / "unoserver.log").read_bytes()[-size:].decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def _proxy(self, timeout_s: float) -> xmlrpc.client.ServerProxy:
        return xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self.port}", transport=_Transport(timeout_s),
                                         allow_none=True)

    def _call(self, method: str, *args: object, timeout_s: float) -> object:
        if self.proc is None or self.proc.poll() is not None:
            raise WorkerDiedError(f"worker {self.index} is not running")
        try:
            with self._proxy(timeout_s) as proxy:
                return getattr(proxy, method)(*args)
        except TimeoutError as exc:
            raise WorkerTimeoutError(f"{method} took longer than {timeout_s:g} s") from exc
        except (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError) as exc:
            raise WorkerDiedError(f"worker {self.index}: {exc.__class__.__name__}: {exc}") from exc

    def ping(self, *, timeout_s: float = 5.0) -> None:
        """Ask the server for its info; raises WorkerDiedError/WorkerTimeoutError when it does not answer properly."""
        info = self._call("info", timeout_s=timeout_s)
        if not isinstance(info, dict) or info.get("api") != API_VERSION:
            raise WorkerDiedError(f"worker {self.index} answered an unexpected info: {str(info)[:200]}")

    def convert(self, *, indata: bytes | None, inpath: Path | None, outpath: Path | None, options: list[str],
                timeout_s: float) -> bytes | None:
        """One conversion to PDF; bytes back, or None when written to `outpath`."""
        data = xmlrpc.client.Binary(indata) if indata is not None else None
        try:
            result = self._call("convert", str(inpath) if inpath else None, data,
                                str(outpath) if outpath else None, "pdf", "writer_pdf_Export", options, False,
                                None, None, timeout_s=timeout_s)
        except xmlrpc.client.Fault as fault:
            if not self.alive():
                raise WorkerDiedError(f"worker {self.index} died during the conversion: {fault.faultString}") from fault
            raise DocumentRefusedError(fault.faultString) from fault
        self.conversions += 1
        self.total_conversions += 1
        if result is None:
            return None
        return result.data if isinstance(result, xmlrpc.client.Binary) else bytes(result)  # type: ignore[arg-type]


def find_soffice(configured: str | None) -> str | None:
    """The LibreOffice executable: the configured one, else soffice/libreoffice on PATH."""
    if configured:
        return configured if shutil.which(configured) else None
    return shutil.which("soffice") or shutil.which("libreoffice")
