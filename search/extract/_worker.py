"""Runs one extractor on one file, in the extraction worker process (or in-process for small plain text)."""

from __future__ import annotations

import importlib
import logging
import resource
import signal
from multiprocessing.connection import Connection
from typing import BinaryIO

from search.extract._sink import ExtractionError, Full, Options, TextSink

MEMORY_LIMIT = 2 * 1024**3  # address space of a worker: a bomb ends as "failed", not as the OOM killer's victim
_ERROR_CHARS = 200

Result = tuple[str, str, str | None]  # text, status, error


def run(fp: BinaryIO, target: str, options: Options) -> Result:
    """Extract with the extractor named 'module:function'; every failure becomes a status, never an exception."""
    sink = TextSink(options.max_chars)
    try:
        module, _, name = target.partition(":")
        getattr(importlib.import_module(module), name)(fp, sink, options)
    except Full:
        return sink.text(), "truncated", None
    except ExtractionError as exc:
        return "", "failed", _short(str(exc))
    except MemoryError:
        return "", "failed", "out of memory while extracting"
    except RecursionError:
        return "", "failed", "structure nested too deeply"
    except Exception as exc:  # any other library error on a broken file
        return "", "failed", _short(f"{type(exc).__name__}: {exc}")
    text = sink.text()
    return text, ("ok" if text else "empty"), None


def _short(message: str) -> str:
    line = " ".join(message.split())
    return line if len(line) <= _ERROR_CHARS else line[: _ERROR_CHARS - 1] + "…"


def serve(conn: Connection) -> None:
    """Worker loop: receive (path, target, options), answer a Result, until the parent closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it kills us if needed
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # warnings about damaged PDFs are expected here
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY or soft > MEMORY_LIMIT:
            if hard == resource.RLIM_INFINITY or hard >= MEMORY_LIMIT:
                resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, hard))
    except (ValueError, OSError):
        pass
    while True:
        try:
            path, target, options = conn.recv()
        except (EOFError, OSError):
            return
        try:
            with open(path, "rb") as fp:
                result = run(fp, target, options)
        except OSError as exc:
            result = "", "failed", _short(f"cannot open the spooled content: {exc}")
        conn.send(result)
