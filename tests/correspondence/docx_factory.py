"""Test DOCX files built with python-docx, and small helpers to read rendered ones back."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Sequence

from docx import Document
from docx.shared import Mm


def make_docx(paragraphs: Sequence[str], table: Sequence[Sequence[str]] | None = None, header: str | None = None,
              *, footer: str | None = None, split_runs: bool = False, picture: bytes | None = None,
              after_table: Sequence[str] = ()) -> bytes:
    """A DOCX with the given paragraphs, then an optional table (rows of cell texts) and `after_table` paragraphs.

    split_runs cuts each paragraph into runs of three characters, as Word does after edits, so tests see
    docxtpl's patching join tags split across runs; picture embeds a PNG in the last paragraph.
    """
    doc = Document()
    for text in paragraphs:
        paragraph = doc.add_paragraph()
        if split_runs:
            for i in range(0, len(text), 3):
                paragraph.add_run(text[i:i + 3])
        else:
            paragraph.add_run(text)
    if table:
        grid = doc.add_table(rows=len(table), cols=max(len(r) for r in table))
        for r, row in enumerate(table):
            for c, text in enumerate(row):
                grid.cell(r, c).text = text
    for text in after_table:
        doc.add_paragraph(text)
    if picture is not None:
        doc.add_paragraph().add_run().add_picture(io.BytesIO(picture), width=Mm(20))
    if header is not None:
        doc.sections[0].header.paragraphs[0].text = header
    if footer is not None:
        doc.sections[0].footer.paragraphs[0].text = footer
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def png(width: int = 4, height: int = 2, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A small solid-colour PNG (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def text_of(docx: bytes) -> str:
    """All paragraph text of a DOCX (body paragraphs, then table cells), one paragraph per line."""
    doc = Document(io.BytesIO(docx))
    lines = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        for row in table.rows:
            lines.append(" | ".join(cell.text for cell in row.cells))
    return "\n".join(lines)


def member(docx: bytes, name: str) -> str:
    """One zip member of a DOCX as text."""
    with zipfile.ZipFile(io.BytesIO(docx)) as archive:
        return archive.read(name).decode("utf-8")


def members(docx: bytes) -> list[str]:
    """The zip member names of a DOCX."""
    with zipfile.ZipFile(io.BytesIO(docx)) as archive:
        return archive.namelist()


def with_member(docx: bytes, name: str, content: bytes | None) -> bytes:
    """The DOCX with one zip member replaced (or removed, when content is None)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(docx)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename != name:
                target.writestr(info, source.read(info))
        if content is not None:
            target.writestr(name, content)
    return out.getvalue()
