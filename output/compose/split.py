"""Splitting one batch PDF (a `render_many` DOCX converted once) back into one PDF per letter.

Each letter starts at the named destination LibreOffice exports for its `postroom_letter_<i>` bookmark
(ExportBookmarksToPDFDestination). LibreOffice 7.4 writes these in the catalog's /Dests dictionary with `_`
spelled as its hex code (`postroom5Fletter5F0`); newer versions may use the /Names /Dests tree or `#5F`: all
are accepted. A letter runs up to the page before the next letter's start, so the letters' page counts add up
to the batch's. Each part keeps the batch's XMP packet and output intent, so a PDF/A batch gives PDF/A letters.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pikepdf

from output.compose.metadata import apply_metadata, xmp_of
from output.errors import ComposeError

_DEST = re.compile(r"^/?postroom(?:_|5F|#5F)letter(?:_|5F|#5F)(\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class SplitLetter:
    """One letter of a batch: its index in the batch, its own PDF and its page count."""

    index: int
    pdf: bytes
    pages: int


def _destinations(doc: pikepdf.Pdf) -> dict[int, pikepdf.Object]:
    """Letter index -> destination array, from the catalog's /Dests and the /Names /Dests tree."""
    found: dict[int, pikepdf.Object] = {}
    root = doc.Root
    items: list[tuple[str, pikepdf.Object]] = []
    if "/Dests" in root:
        items += [(str(k), v) for k, v in root.Dests.items()]
    if "/Names" in root and "/Dests" in root.Names:
        items += [(str(k), v) for k, v in pikepdf.NameTree(root.Names.Dests).items()]
    for name, dest in items:
        match = _DEST.match(name)
        if match is None:
            continue
        if isinstance(dest, pikepdf.Dictionary) and "/D" in dest:
            dest = dest.D
        found[int(match.group(1))] = dest
    return found


def _page_numbers(doc: pikepdf.Pdf, count: int) -> list[int]:
    dests = _destinations(doc)
    index_of = {page.objgen: i for i, page in enumerate(doc.pages)}
    starts = []
    for letter in range(count):
        dest = dests.get(letter)
        if dest is None or not isinstance(dest, pikepdf.Array) or len(dest) == 0:
            raise ComposeError(f"the batch PDF has no start for letter {letter} (no postroom_letter_{letter} "
                               "destination): was it converted with bookmarks exported as destinations?",
                               letter=letter)
        page = index_of.get(dest[0].objgen)
        if page is None:
            raise ComposeError(f"the start of letter {letter} points at no page of the batch", letter=letter)
        starts.append(page)
    if starts and starts[0] != 0:
        raise ComposeError("the batch PDF has pages before its first letter", letter=0)
    for i in range(1, len(starts)):
        if starts[i] <= starts[i - 1]:
            raise ComposeError(f"letter {i} does not start after letter {i - 1} in the batch PDF", letter=i)
    return starts


@dataclass(frozen=True)
class LetterMetadata:
    """What goes into one split letter's XMP and Info dictionary."""

    letter_id: str
    template: str
    template_version: str
    title: str
    extra: dict[str, str] | None = None


def _part(src: pikepdf.Pdf, first: int, last: int, metadata: LetterMetadata | None, base_xmp: bytes) -> bytes:
    dst = pikepdf.new()
    dst.pages.extend(src.pages[first:last])
    if "/OutputIntents" in src.Root:
        obj = src.Root.OutputIntents
        dst.Root.OutputIntents = dst.copy_foreign(obj if obj.is_indirect else src.make_indirect(obj))
    if metadata is not None:
        apply_metadata(dst, base=base_xmp, letter_id=metadata.letter_id, template=metadata.template,
                       template_version=metadata.template_version, title=metadata.title, extra=metadata.extra)
    elif "/Metadata" in src.Root:
        dst.Root.Metadata = dst.copy_foreign(src.Root.Metadata)
    if "/Lang" in src.Root:
        dst.Root.Lang = pikepdf.String(str(src.Root.Lang))
    for page in dst.pages:
        # The batch's structure tree stays behind; a page's pointer into it would dangle.
        if "/StructParents" in page.obj:
            del page.obj["/StructParents"]
    out = io.BytesIO()
    # The XMP already names the right PDF version (the batch's); pikepdf's fix-up would parse it again.
    dst.save(out, deterministic_id=True, min_version=src.pdf_version, fix_metadata_version=False)
    return out.getvalue()


def split_letters(pdf: Path | bytes, *, count: int,
                  metadata: Sequence[LetterMetadata] | None = None) -> list[SplitLetter]:
    """One PDF per letter of a batch PDF, found by its postroom_letter_<i> destinations (each stamped with its
    metadata when given); ComposeError if one letter's start is missing or out of order."""
    if count < 1:
        raise ComposeError("a batch has at least one letter")
    if metadata is not None and len(metadata) != count:
        raise ValueError("one metadata entry per letter")
    try:
        src = pikepdf.open(pdf if isinstance(pdf, Path) else io.BytesIO(pdf))
    except pikepdf.PdfError as exc:
        raise ComposeError(f"not a readable PDF: {exc}") from exc
    with src:
        starts = _page_numbers(src, count)
        ends = [*starts[1:], len(src.pages)]
        base = xmp_of(src)
        return [SplitLetter(index=i, pdf=_part(src, a, b, metadata[i] if metadata else None, base), pages=b - a)
                for i, (a, b) in enumerate(zip(starts, ends, strict=True))]
