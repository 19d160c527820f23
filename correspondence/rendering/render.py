"""Rendering compiled templates: one letter per DOCX, or many letters in one DOCX for batch conversion.

Headers, footers, footnotes and endnotes that contain Jinja are rendered by `render_one` with the letter's
context. One DOCX cannot give each letter of a batch its own header (every section points at the same header
parts), so `render_many` refuses such templates with a RenderError naming the part: render those letters one by
one. Static headers and footers are fine in batches.
"""

from __future__ import annotations

import io
import itertools
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, BinaryIO

from jinja2 import Template
from jinja2.exceptions import SecurityError, UndefinedError

from correspondence.errors import RenderError, TemplateSecurityError
from correspondence.rendering import docxparts as dp
from correspondence.rendering.compiler import CompiledTemplate
from correspondence.rendering.locate import runtime_location
from correspondence.rendering.model import BatchItem, RenderedBatch
from correspondence.rendering.sandbox import MAX_OUTPUT, MIB, PIECE_COST
from correspondence.rendering.state import DEFAULT_LOCALE, XML_DECL, RenderState, active, resolve_locale
from repository.errors import RepositoryError

BOOKMARK_PREFIX = "postroom_letter_"
COMPRESS_LEVEL = 1  # XML deflates well even at level 1; speed matters more for batches converted right away
_DOCPR_ID = re.compile(r'(<wp:docPr\b[^>]*?\bid=")(\d+)(")')
_BOOKMARK_ID = re.compile(r'(<w:bookmark(?:Start|End)\b[^>]*?\bw:id=")(\d+)(")')
_FIRST_P = re.compile(r"<w:p(?=[ >/])[^>]*?(/?)>")
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")
_FLUSH_AT = 1 << 20
_PROPERTIES = re.compile(r"<w:([pr])Pr>.*?</w:\1Pr>", re.DOTALL)
_TOO_LONG = f"the letter is longer than {MAX_OUTPUT // MIB} MiB of document XML, more than the sandbox allows"


def customer_locale(context: Mapping[str, Any]) -> str:
    """The locale of the letter's customer (`customer.locale`), en-GB when there is none."""
    customer = context.get("customer")
    tag = customer.get("locale") if isinstance(customer, Mapping) else getattr(customer, "locale", None)
    return tag if isinstance(tag, str) and tag else DEFAULT_LOCALE


def _generate(template: Template, context: Mapping[str, Any], state: RenderState) -> str:
    """The part's text, refused (where the template is) once the letter's output passes MAX_OUTPUT."""
    room = MAX_OUTPUT - state.output
    pieces = []
    stream = template.generate(context)
    for piece in stream:
        if piece:
            room -= len(piece) + PIECE_COST
            if room < 0:  # thrown into the template, so the error names the tag that was printing
                stream.throw(SecurityError(_TOO_LONG))
            pieces.append(piece)
    xml = "".join(pieces)
    state.output = MAX_OUTPUT - room
    return xml


def _listing_size(xml: str) -> int:
    """At least the length `dp.unpatch` gives the XML: docxtpl turns a line break in the text into 41 characters
    of runs, and a tab, \\a or \\f into at most 140 plus twice the run's or paragraph's properties."""
    breaks = xml.count("\n") - xml.count("\n<w:p")
    others = xml.count("\t") + xml.count("\a") + xml.count("\f")
    if not others:
        return len(xml) + breaks * 45
    longest = max((m.end() - m.start() for m in _PROPERTIES.finditer(xml)), default=0)
    return len(xml) + breaks * 45 + others * (160 + 2 * longest)


def _render(template: Template, source: str, context: Mapping[str, Any], state: RenderState, part: str,
            **where: object) -> str:
    state.part = part
    with render_errors(source, part, **where):
        xml = _generate(template, context, state)
        if "\n" in xml or "\t" in xml:
            state.output += _listing_size(xml) - len(xml)
            if state.output > MAX_OUTPUT:
                raise SecurityError(f"{_TOO_LONG}, once its tabs and line breaks become Word runs")
        return xml


@contextmanager
def render_errors(source: str, part: str, what: str = "the letter", **where: object) -> Iterator[None]:
    """Turn what a template raises while rendering into a 422 saying where: TemplateSecurityError for what the
    sandbox refused, RenderError for anything else (never a traceback)."""
    try:
        yield
    except RepositoryError:
        raise
    except SecurityError as exc:
        raise TemplateSecurityError(f"the template tried something the rendering sandbox forbids: {exc}",
                                    part=part, **runtime_location(source, exc), **where) from None
    except UndefinedError as exc:
        name = _UNDEFINED_NAME.search(exc.message or "")
        raise RenderError(f"{exc.message}: the template uses it in a way that needs a value (a loop, a "
                          "calculation, a filter); give it in the data or guard it with {% if %}",
                          part=part, **runtime_location(source, exc, name.group(1) if name else ""), **where) from None
    except Exception as exc:  # any other failure of the template's own logic: a 422, never a traceback
        message = str(exc) or type(exc).__name__
        raise RenderError(f"{what} could not be rendered: {message}", part=part,
                          **runtime_location(source, exc), **where) from None


def _body(compiled: CompiledTemplate, context: Mapping[str, Any], state: RenderState, docpr: Iterator[int],
          **where: object) -> str:
    xml = dp.unpatch(_render(compiled.body_template, compiled.body_source, context, state, compiled.main, **where))
    if compiled.fix_tables:
        xml = dp.fix_tables(compiled.body_open, xml)
    if "<wp:docPr" in xml:
        xml = _DOCPR_ID.sub(lambda m: f"{m.group(1)}{next(docpr)}{m.group(3)}", xml)
    return xml


def _write_rest(archive: zipfile.ZipFile, compiled: CompiledTemplate, state: RenderState,
                rendered: Mapping[str, str]) -> None:
    for name, xml in rendered.items():
        archive.writestr(name, xml)
    for part, original in compiled.rels.items():
        text = state.relationships_xml(part, original)
        if text is not None:
            archive.writestr(dp.rels_name(part), text)
        elif original is not None:
            archive.writestr(dp.rels_name(part), original)
    for media in state.media.values():
        archive.writestr(media.name, media.data, compress_type=zipfile.ZIP_STORED)


def _open(target: BinaryIO) -> zipfile.ZipFile:
    return zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL)


def render_one(compiled: CompiledTemplate, context: Mapping[str, Any], *, locale: str = DEFAULT_LOCALE) -> bytes:
    """One letter as a DOCX; RenderError/TemplateSecurityError (422) when the template fails on this data."""
    state = RenderState(locale=resolve_locale(locale), named_images=compiled.images)
    docpr = itertools.count(1)
    with active(state):
        body = _body(compiled, context, state, docpr)
        rendered = {compiled.main: f"{compiled.prefix}{body}{compiled.sect_pr}{compiled.suffix}"}
        for part in compiled.parts:
            xml = dp.unpatch(_render(part.template, part.source, context, state, part.name))
            if "<wp:docPr" in xml:
                xml = _DOCPR_ID.sub(lambda m: f"{m.group(1)}{next(docpr)}{m.group(3)}", xml)
            rendered[part.name] = XML_DECL + xml
    out = io.BytesIO()
    with _open(out) as archive:
        for name, content in compiled.static:
            archive.writestr(name, content)
        _write_rest(archive, compiled, state, rendered)
    return out.getvalue()


def _bookmarked(xml: str, index: int, stride: int) -> tuple[str, str]:
    """The letter with its template bookmarks renumbered for this letter and its own bookmark first."""
    if "<w:bookmark" in xml:
        offset = index * stride
        xml = _BOOKMARK_ID.sub(lambda m: f"{m.group(1)}{int(m.group(2)) + offset}{m.group(3)}", xml)
    name = f"{BOOKMARK_PREFIX}{index}"
    bid = (index + 1) * stride - 1
    mark = f'<w:bookmarkStart w:id="{bid}" w:name="{name}"/><w:bookmarkEnd w:id="{bid}"/>'
    match = _FIRST_P.search(xml)
    if match is None:
        return f"<w:p>{mark}</w:p>{xml}", name
    if match.group(1):  # an empty <w:p/>
        return f"{xml[:match.start()]}{match.group(0)[:-2]}>{mark}</w:p>{xml[match.end():]}", name
    pos = match.end()
    if xml.startswith("<w:pPr/>", pos):
        pos += len("<w:pPr/>")
    elif xml.startswith("<w:pPr", pos):
        pos = xml.index("</w:pPr>", pos) + len("</w:pPr>")
    return f"{xml[:pos]}{mark}{xml[pos:]}", name


def render_many(compiled: CompiledTemplate, contexts: Iterable[Mapping[str, Any]], *,
                locale_of: Callable[[Mapping[str, Any]], str | None] = customer_locale,
                out: BinaryIO | None = None) -> RenderedBatch:
    """Many letters in one DOCX, each starting a new section (new page, page numbers from 1) at a bookmark
    `postroom_letter_<index>`; written to `out` when given (then `docx` is None). Refuses templates whose
    headers, footers or notes contain Jinja (RenderError naming the part): render those with render_one."""
    if compiled.parts:
        part = compiled.parts[0]
        raise RenderError(f"{part.name} contains Jinja, so each letter would need its own copy of it; one batch "
                          "document cannot do that: render these letters one by one", part=part.name)
    target = out if out is not None else io.BytesIO()
    state = RenderState(locale=resolve_locale(DEFAULT_LOCALE), named_images=compiled.images)
    docpr = itertools.count(1)
    letters: list[BatchItem] = []
    with active(state), _open(target) as archive:
        for name, content in compiled.static:
            archive.writestr(name, content)
        with archive.open(compiled.main, "w") as stream:
            pending = [compiled.prefix]
            size = len(compiled.prefix)
            for index, context in enumerate(contexts):
                state.locale = resolve_locale(locale_of(context))
                state.new_letter()
                xml = _body(compiled, context, state, docpr, letter=index)
                xml, bookmark = _bookmarked(xml, index, compiled.bookmark_stride)
                if index:
                    pending.append(compiled.batch_break)
                pending.append(xml)
                size += len(xml)
                letters.append(BatchItem(index=index, bookmark=bookmark))
                if size >= _FLUSH_AT:
                    stream.write("".join(pending).encode("utf-8"))
                    pending, size = [], 0
            if not letters:
                raise RenderError("the batch has no letters")
            pending += [compiled.batch_sect_pr, compiled.suffix]
            stream.write("".join(pending).encode("utf-8"))
        _write_rest(archive, compiled, state, {})
    return RenderedBatch(docx=None if out is not None else target.getvalue(), letters=letters)
