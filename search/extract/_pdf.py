"""PDF through pypdf, page by page, stopping at max_chars. A PDF without a text layer (a scan) is "empty"."""

from __future__ import annotations

from typing import BinaryIO

from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError, PdfReadError

from search.extract._sink import ExtractionError, Options, TextSink


def extract(fp: BinaryIO, sink: TextSink, options: Options) -> None:
    """Each page's text; a page that fails is skipped if other pages give text, else the PDF counts as broken."""
    try:
        reader = PdfReader(fp)
        if reader.is_encrypted and not reader.decrypt(""):  # an owner password alone still allows reading
            raise ExtractionError("the PDF is encrypted with a password")
        pages = reader.pages
        count = len(pages)
    except FileNotDecryptedError as exc:
        raise ExtractionError("the PDF is encrypted with a password") from exc
    except PdfReadError as exc:
        raise ExtractionError(f"PDF unreadable: {exc}") from exc
    first_error: Exception | None = None
    for number in range(count):
        try:
            text = pages[number].extract_text()
        except Exception as exc:  # pypdf raises many kinds on damaged pages
            first_error = first_error or exc
            continue
        sink.write(text)
        sink.newline()
    if first_error is not None and not sink.length:
        raise ExtractionError(f"PDF unreadable: {type(first_error).__name__}: {first_error}")
