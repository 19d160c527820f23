"""Helpers for e-discovery tests: PDFs with text, and the production load files read back with their
delimiters (independently of the code that writes them)."""

from __future__ import annotations

import io

import pikepdf

FIELD, QUOTE, NEWLINE = "\x14", "\xfe", "\xae"


def pdf(*lines: str) -> bytes:
    """A PDF with one page of text per line."""
    doc = pikepdf.new()
    font = doc.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                BaseFont=pikepdf.Name.Helvetica))
    for line in lines:
        page = doc.add_blank_page(page_size=(595, 842))
        page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        page.Contents = doc.make_stream(f"BT /F1 14 Tf 72 760 Td ({line}) Tj ET".encode("latin-1"))
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def parse_dat(data: bytes) -> list[dict[str, str]]:
    """Records of a Concordance DAT (UTF-8 with BOM; þ-quoted values separated by U+0014; CRLF records)."""
    text = data.decode("utf-8")
    assert text.startswith("\ufeff")
    lines = text[1:].split("\r\n")
    assert lines[-1] == ""
    rows = []
    for line in lines[:-1]:
        values = line.split(FIELD)
        assert all(v.startswith(QUOTE) and v.endswith(QUOTE) and len(v) >= 2 for v in values), line
        rows.append([v[1:-1].replace(NEWLINE, "\n") for v in values])
    header, *records = rows
    return [dict(zip(header, r, strict=True)) for r in records]


def parse_opt(data: bytes) -> list[list[str]]:
    """Lines of an Opticon file, split into their seven fields."""
    text = data.decode("ascii")
    assert text.endswith("\r\n")
    lines = [line.split(",") for line in text[:-2].split("\r\n")]
    assert all(len(line) == 7 for line in lines)
    return lines


def member(path: str) -> str:
    """A load-file path as a ZIP member name."""
    return path.replace("\\", "/")
