"""DOCX through python-docx: body paragraphs and tables (content controls included), then headers and footers.

python-docx opens the package and finds the parts; a paragraph's runs are read straight from its XML elements
(Paragraph.text runs an XPath query per paragraph and run, about 20 times slower on long documents). Not read:
text boxes, footnotes, endnotes, comments and deleted text.
"""

from __future__ import annotations

import zipfile
from typing import BinaryIO

import docx
from docx.opc.exceptions import PackageNotFoundError
from docx.oxml.ns import qn

from search.extract._sink import ExtractionError, Options, TextSink

_P, _TBL, _TR, _TC, _R, _T = qn("w:p"), qn("w:tbl"), qn("w:tr"), qn("w:tc"), qn("w:r"), qn("w:t")
_DESCEND = frozenset({_TBL, qn("w:sdt"), qn("w:sdtContent"), qn("w:customXml"), qn("w:smartTag")})
# Inside a paragraph: elements whose runs are part of its text (links, fields, content controls, insertions).
_INLINE = frozenset({qn("w:hyperlink"), qn("w:ins"), qn("w:moveTo"), qn("w:fldSimple"), qn("w:smartTag"),
                     qn("w:customXml"), qn("w:sdt"), qn("w:sdtContent"), qn("w:dir"), qn("w:bdo")})
_RUN_CHARS = {qn("w:tab"): "\t", qn("w:ptab"): "\t", qn("w:br"): "\n", qn("w:cr"): "\n",
              qn("w:noBreakHyphen"): "-"}
INFLATE_FACTOR = 4


def extract(fp: BinaryIO, sink: TextSink, options: Options) -> None:
    """A Word document's text in reading order."""
    _check_inflated_size(fp, options.max_bytes * INFLATE_FACTOR)
    fp.seek(0)
    try:
        document = docx.Document(fp)
    except PackageNotFoundError as exc:
        raise ExtractionError("the ZIP archive is not a Word document") from exc
    except KeyError as exc:
        raise ExtractionError(f"the ZIP archive is not a Word document: {exc}") from exc
    _walk(document.element.body, sink)
    seen: set[str] = set()
    for section in document.sections:
        for part in (section.header, section.first_page_header, section.even_page_header,
                     section.footer, section.first_page_footer, section.even_page_footer):
            if part.is_linked_to_previous:  # no definition of its own (reading it would create one)
                continue
            name = str(part.part.partname)
            if name not in seen:
                seen.add(name)
                _walk(part.part.element, sink)


def _check_inflated_size(fp: BinaryIO, limit: int) -> None:
    # zipfile never inflates an entry past its declared size, so the declared sizes bound what python-docx reads.
    try:
        with zipfile.ZipFile(fp) as archive:
            total = sum(entry.file_size for entry in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise ExtractionError(f"not a DOCX file: not a ZIP archive ({exc})") from exc
    if total > limit:
        raise ExtractionError(f"the DOCX expands to {total} bytes, more than the limit of {limit}")


def _walk(container: object, sink: TextSink) -> None:
    for child in container.iterchildren():  # type: ignore[attr-defined]
        tag = child.tag
        if tag == _P:
            parts: list[str] = []
            _runs(child, parts)
            sink.write("".join(parts))
            sink.newline()
        elif tag in (_TR, _TC):  # merged cells are one w:tc, so nothing is read twice
            _walk(child, sink)
            sink.newline()
        elif tag in _DESCEND:
            _walk(child, sink)


def _runs(container: object, parts: list[str]) -> None:
    for child in container.iterchildren():  # type: ignore[attr-defined]
        tag = child.tag
        if tag == _R:
            for item in child.iterchildren():
                if item.tag == _T:
                    parts.append(item.text or "")
                elif item.tag in _RUN_CHARS:
                    parts.append(_RUN_CHARS[item.tag])
        elif tag in _INLINE:
            _runs(child, parts)
