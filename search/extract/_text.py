"""Plain text, CSV and JSON: decoding with a BOM or declared charset, else UTF-8 with replacement characters."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import BinaryIO

from search.extract._sink import ExtractionError, Options, TextSink

CHUNK = 64 * 1024
_SNIFF = 64 * 1024
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def choose_encoding(head: bytes, declared: str | None) -> str:
    """A BOM wins, then a charset the caller declared (if Python knows it), then UTF-8."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    if declared:
        try:
            return codecs.lookup(declared).name
        except LookupError:
            pass
    return "utf-8"


def decoded_chunks(fp: BinaryIO, declared: str | None) -> Iterator[str]:
    """Decode the file chunk by chunk; refuse content that is binary rather than text (judged on its start)."""
    head = fp.read(_SNIFF)
    encoding = choose_encoding(head, declared)
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    first = decoder.decode(head)
    if _looks_binary(first):
        raise ExtractionError(f"not {encoding} text (binary content)")
    yield first
    while chunk := fp.read(CHUNK):
        yield decoder.decode(chunk)
    yield decoder.decode(b"", final=True)


def _looks_binary(text: str) -> bool:
    # Like git and file(1): NULs, or many undecodable bytes, at the start mean this is not text. A few
    # replacement characters (a cp1252 "ü" in a UTF-8 file) are kept: the rest of the text is still searchable.
    if not text:
        return False
    bad = text.count("\ufffd") + text.count("\x00")
    return bad > max(8, len(text) // 10)


def extract_plain(fp: BinaryIO, sink: TextSink, options: Options) -> None:
    """Plain text and CSV (CSV separators stay; the index tokenises around them)."""
    for text in decoded_chunks(fp, options.charset):
        sink.write(text)


def extract_json(fp: BinaryIO, sink: TextSink, options: Options) -> None:
    """JSON: keys and scalar values in document order, one 'key: value' per line."""
    text = "".join(decoded_chunks(fp, options.charset))
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ExtractionError(f"not valid JSON: {str(exc).splitlines()[0][:150]}") from exc
    del text
    stack: list[tuple[str | None, object]] = [(None, data)]
    while stack:  # iterative: deeply nested JSON must not hit the recursion limit
        key, value = stack.pop()
        if isinstance(value, dict):
            if key is not None:
                sink.write(key)
                sink.newline()
            stack.extend(reversed(value.items()))
        elif isinstance(value, list):
            if key is not None:
                sink.write(key)
                sink.newline()
            stack.extend((None, item) for item in reversed(value))
        elif value is not None and not isinstance(value, bool):
            sink.write(f"{key}: {value}" if key is not None else str(value))
            sink.newline()
