"""Text extraction for the search index: DOCX, PDF, plain text/CSV, HTML, e-mail, JSON and XML.

`extract_text` never raises for a bad file: the outcome is a status. Extraction runs in a warm worker process
with a hard time limit (`_pool`); small plain text runs in-process. Content reaches the worker as a temporary
file (mode 0600, removed afterwards) spooled from `open_content()` in one streamed copy.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from search.extract._pool import close_pool, get_pool
from search.extract._sink import Options
from search.extract._worker import run

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_PLAIN = "search.extract._text:extract_plain"
_JSON = "search.extract._text:extract_json"
_HTML = "search.extract._html:extract"
_XML = "search.extract._xml:extract"
_EXTRACTORS: dict[str, str] = {
    "text/plain": _PLAIN,
    "text/csv": _PLAIN,
    "text/html": _HTML,
    "application/xhtml+xml": _HTML,
    "application/pdf": "search.extract._pdf:extract",
    DOCX: "search.extract._docx:extract",
    "message/rfc822": "search.extract._email:extract",
    "application/json": _JSON,
    "application/xml": _XML,
    "text/xml": _XML,
}
_BY_EXTENSION = {".txt": "text/plain", ".csv": "text/csv", ".htm": "text/html", ".html": "text/html",
                 ".pdf": "application/pdf", ".docx": DOCX, ".eml": "message/rfc822", ".json": "application/json",
                 ".xml": "application/xml"}
_GENERIC = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_IN_PROCESS = frozenset({_PLAIN})
IN_PROCESS_MAX_BYTES = 1024 * 1024
_COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Extraction:
    """The text of one document and how extracting it went."""

    text: str  # plain text, whitespace-normalised, at most max_chars characters
    status: str  # ok | empty | truncated | failed | timeout | unsupported | too_large
    error: str | None  # a short reason for failed/timeout/unsupported/too_large, never a stack trace


def extract_text(open_content: Callable[[], BinaryIO], *, media_type: str, size: int, filename: str = "",
                 max_bytes: int = 50 * 1024 * 1024, max_chars: int = 1_000_000,
                 timeout_s: float = 20.0) -> Extraction:
    """Extract a document's text. Bad files give a status; only errors reading the content itself propagate."""
    base, charset = _parse_media_type(media_type)
    target = extractor_for(base, filename)
    if target is None:
        return Extraction("", "unsupported", f"no text extractor for {base or 'content of unknown type'}")
    if size > max_bytes:
        return Extraction("", "too_large", f"{size} bytes is more than the limit of {max_bytes} bytes")
    options = Options(max_chars=max_chars, max_bytes=max_bytes, charset=charset, filename=filename)
    if target in _IN_PROCESS and size <= IN_PROCESS_MAX_BYTES:
        with contextlib.closing(open_content()) as fp:
            return Extraction(*run(fp, target, options))
    path = _spool(open_content, max_bytes)
    if path is None:
        return Extraction("", "too_large", f"the content is larger than the limit of {max_bytes} bytes")
    try:
        return Extraction(*get_pool().run(path, target, options, timeout_s))
    finally:
        os.unlink(path)


def extractor_for(media_type: str, filename: str = "") -> str | None:
    """The extractor ('module:function') for a bare media type; generic types are judged by the file name."""
    if media_type in _GENERIC:
        media_type = _BY_EXTENSION.get(os.path.splitext(filename)[1].lower(), media_type)
    if target := _EXTRACTORS.get(media_type):
        return target
    if media_type.endswith("+json"):
        return _JSON
    if media_type.endswith("+xml"):
        return _XML
    if media_type.startswith("text/"):
        return _PLAIN
    return None


def register(media_type: str, target: str) -> None:
    """Add an extractor 'module:function' taking (fp, sink, options); its module must import in the worker."""
    _EXTRACTORS[media_type.lower()] = target


def warm_up() -> None:
    """Start an extraction worker ahead of the first document (indexer start-up)."""
    get_pool().warm_up()


def shutdown() -> None:
    """Stop the idle extraction workers."""
    close_pool()


def _parse_media_type(media_type: str) -> tuple[str, str | None]:
    base, *params = (media_type or "").split(";")
    charset = None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return base.strip().lower(), charset


def _spool(open_content: Callable[[], BinaryIO], max_bytes: int) -> str | None:
    # Plaintext of an encrypted document touches the disk here, briefly, readable by this user only.
    fd, path = tempfile.mkstemp(prefix="postroom-extract-")
    try:
        with os.fdopen(fd, "wb") as out, contextlib.closing(open_content()) as src:
            copied = 0
            while chunk := src.read(_COPY_CHUNK):
                copied += len(chunk)
                if copied > max_bytes:
                    os.unlink(path)
                    return None
                out.write(chunk)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return path


__all__ = ["DOCX", "Extraction", "extract_text", "extractor_for", "register", "shutdown", "warm_up"]
