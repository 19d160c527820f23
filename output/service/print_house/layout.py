"""The print file: every piece's letter PDF, in run order, merged into one PDF with each sheet's front stamped.

Decisions:
- Every sheet's front carries the code (letter id, piece seq, sheet i of n), the piece's first page included,
  so the inserter can tell a missing or surplus sheet, not only where a piece starts.
- Duplex: a piece with an odd page count gets a blank back page, so the next piece starts on a sheet of its own.
- Memory: pieces are merged in chunks of CHUNK, each written to a temporary PDF with its sources closed; the
  chunks are then joined into the final file (qpdf reads them from disk while it writes). A letter's PDF is read
  through a seekable stream from the repository, never whole.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pikepdf

from output.service.print_house.stamp import code_text, stamp
from repository.types import new_id

CHUNK = 100


@dataclass(frozen=True)
class Source:
    """One piece to print: whose letter, its sequence number, and how to open its PDF."""

    letter_id: str
    seq: int
    open: Callable[[], BinaryIO]


@dataclass(frozen=True)
class Layout:
    """Where a piece lies in the print file."""

    pages: int  # the letter's own pages (a blank back page not counted)
    sheets: int
    first_page: int  # 1-based


def sheets_of(pages: int, duplex: bool) -> int:
    """How many sheets `pages` pages take."""
    return (pages + 1) // 2 if duplex else pages


def _chunks(items: Sequence[Source], size: int) -> Iterator[Sequence[Source]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _append(part: pikepdf.Pdf, letter: pikepdf.Pdf, source: Source, duplex: bool, first_page: int) -> Layout:
    start = len(part.pages)
    part.pages.extend(letter.pages)
    pages = len(part.pages) - start
    sheets = sheets_of(pages, duplex)
    for sheet in range(sheets):
        front = part.pages[start + sheet * (2 if duplex else 1)]
        stamp(part, front, code_text(source.letter_id, source.seq, sheet + 1, sheets))
    if duplex and pages % 2:
        box = part.pages[-1].mediabox
        part.add_blank_page(page_size=(float(box[2]) - float(box[0]), float(box[3]) - float(box[1])))
    return Layout(pages=pages, sheets=sheets, first_page=first_page)


def _join(parts: list[Path], out: Path) -> None:
    if len(parts) == 1:
        os.replace(parts[0], out)
        return
    with contextlib.ExitStack() as stack:
        whole = stack.enter_context(pikepdf.new())
        for path in parts:
            whole.pages.extend(stack.enter_context(pikepdf.open(path)).pages)
        whole.save(out)


def write_print_file(sources: Sequence[Source], out: Path, *, duplex: bool, tmp_dir: Path) -> list[Layout]:
    """Merge the pieces' PDFs into `out` in the given order, stamped; each piece's layout, in the same order."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    layouts: list[Layout] = []
    parts: list[Path] = []
    next_page = 1
    try:
        for chunk in _chunks(sources, CHUNK):
            path = tmp_dir / f"print-part-{new_id()}.pdf"
            parts.append(path)
            before = next_page - 1  # pages of the chunks already written
            with contextlib.ExitStack() as stack:  # the chunk's letters stay open until it is written
                part = stack.enter_context(pikepdf.new())
                for source in chunk:
                    letter = stack.enter_context(pikepdf.open(stack.enter_context(source.open())))
                    layouts.append(_append(part, letter, source, duplex, next_page))
                    next_page = before + len(part.pages) + 1
                part.save(path)
        _join(parts, out)
    finally:
        for path in parts:
            path.unlink(missing_ok=True)
    return layouts
