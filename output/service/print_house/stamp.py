"""The inserter's 2D code: a QR code (segno) drawn as filled rectangles into a page's content, in its margin.

Decisions:
- Vector rectangles, not an image: sharp at any resolution, a few hundred bytes per page, no image to embed.
- Placed 8 mm from the page's left and bottom edges (bottom-left corner, outside a window envelope's window);
  modules of 0.5 mm, which inserter cameras read. A white box covers the 4-module quiet zone, so a footer
  drawn there cannot spoil the code.
- The page's own content is wrapped in q/Q, so a graphics state it leaves behind cannot move or recolour the code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pikepdf
import segno

PT_PER_MM = 72 / 25.4
MODULE = 0.5 * PT_PER_MM
MARGIN = 8.0 * PT_PER_MM
QUIET = 4  # modules of white around the code


def code_text(letter_id: str, seq: int, sheet: int, sheets: int) -> str:
    """What a sheet's code says: `<letter id>|<piece seq>|<sheet>/<sheets>`."""
    return f"{letter_id}|{seq}|{sheet}/{sheets}"


def _runs(matrix: Sequence[Sequence[int]]) -> Iterator[tuple[int, int, int]]:
    """(row, first column, length) of each horizontal run of dark modules."""
    for r, row in enumerate(matrix):
        c = 0
        while c < len(row):
            if row[c]:
                start = c
                while c < len(row) and row[c]:
                    c += 1
                yield r, start, c - start
            else:
                c += 1


def code_ops(text: str, x: float, y: float) -> bytes:
    """PDF content operators drawing the QR code of `text` with its lower-left module corner at (x, y)."""
    matrix = segno.make(text, error="m", micro=False).matrix
    size = len(matrix)
    side = (size + 2 * QUIET) * MODULE
    ops = ["q", "1 g", f"{x - QUIET * MODULE:.3f} {y - QUIET * MODULE:.3f} {side:.3f} {side:.3f} re f", "0 g"]
    ops += [f"{x + c * MODULE:.3f} {y + (size - 1 - r) * MODULE:.3f} {n * MODULE:.3f} {MODULE:.3f} re"
            for r, c, n in _runs(matrix)]
    ops += ["f", "Q"]
    return ("\n".join(ops) + "\n").encode("ascii")


def stamp(pdf: pikepdf.Pdf, page: pikepdf.Page, text: str) -> None:
    """Draw the code of `text` into the bottom-left margin of `page` (a page of `pdf`)."""
    box = page.mediabox
    x, y = float(box[0]) + MARGIN, float(box[1]) + MARGIN
    page.contents_add(pikepdf.Stream(pdf, b"q\n"), prepend=True)
    page.contents_add(pikepdf.Stream(pdf, b"Q\n" + code_ops(text, x, y)))
