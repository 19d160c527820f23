"""Files for the extraction tests, built in code: DOCX (python-docx), a hand-written PDF, e-mails, a slow extractor."""

from __future__ import annotations

import io
import time
from email.message import EmailMessage
from typing import BinaryIO

import docx


def docx_bytes(*, paragraphs: list[str], table: list[list[str]] | None = None, header: str = "",
               footer: str = "") -> bytes:
    """A Word document with body paragraphs, an optional table, header and footer."""
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    section = document.sections[0]
    if header:
        section.header.paragraphs[0].text = header
    if footer:
        section.footer.paragraphs[0].text = footer
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF: one Helvetica text line per string, a page per list (an empty list: no text layer)."""
    count = len(pages)
    objects = {1: "<< /Type /Catalog /Pages 2 0 R >>", 3: "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"}
    kids = []
    for i, lines in enumerate(pages):
        page, content = 4 + 2 * i, 5 + 2 * i
        kids.append(f"{page} 0 R")
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"] + [f"{_pdf_string(line)} Tj T*" for line in lines] + ["ET"]
        stream = "\n".join(ops) if lines else ""
        objects[page] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                         f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content} 0 R >>")
        objects[content] = f"<< /Length {len(stream.encode('latin-1'))} >>\nstream\n{stream}\nendstream"
    objects[2] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {count} >>"
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n{objects[number]}\nendobj\n".encode("latin-1")
    xref = len(out)
    size = max(objects) + 1
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    for number in range(1, size):
        out += f"{offsets[number]:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def eml_bytes(*, html: str, plain: str | None = None, attachment: tuple[str, bytes] | None = None) -> bytes:
    """An e-mail with an HTML body (and a plain alternative if given) and an optional attachment."""
    message = EmailMessage()
    message["From"] = "Anna Kowalski <anna@example.org>"
    message["To"] = "service@postroom.example"
    message["Subject"] = "Complaint about invoice 4711"
    message["Date"] = "Tue, 04 Mar 2025 10:15:00 +0100"
    if plain is not None:
        message.set_content(plain)
        message.add_alternative(html, subtype="html")
    else:
        message.set_content(html, subtype="html")
    if attachment:
        name, data = attachment
        message.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return message.as_bytes()


def opener(data: bytes):  # noqa: ANN201
    """An open_content() callable like the vault's: a fresh seekable binary stream each time, counting opens."""
    def open_content() -> BinaryIO:
        open_content.opened += 1  # type: ignore[attr-defined]
        return io.BytesIO(data)
    open_content.opened = 0  # type: ignore[attr-defined]
    return open_content


def slow_extract(fp: BinaryIO, sink: object, options: object) -> None:
    """A hostile extractor: never finishes (registered for a test media type)."""
    time.sleep(600)


def crashing_extract(fp: BinaryIO, sink: object, options: object) -> None:
    """An extractor whose process dies (as a segfault in a C parser would)."""
    import os
    os._exit(3)


def endless_extract(fp: BinaryIO, sink, options: object) -> None:  # noqa: ANN001
    """An extractor that would write forever if the sink did not stop it."""
    while True:
        sink.write("endless text ")
