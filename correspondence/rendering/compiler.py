"""Inspecting and compiling templates: every Jinja-bearing part is patched (docxtpl) and parsed once."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import BinaryIO

from jinja2 import Environment, Template, meta, nodes
from jinja2.exceptions import TemplateSyntaxError as JinjaSyntaxError
from lxml import etree

from correspondence.errors import RenderError, TemplateSecurityError, TemplateSyntaxError, UnknownBlockError
from correspondence.rendering import blocks as blk
from correspondence.rendering import docxparts as dp
from correspondence.rendering.checks import check_condition, unsafe_access
from correspondence.rendering.images import IMAGE_TYPES, check_named_images
from correspondence.rendering.locate import node_location, syntax_error
from correspondence.rendering.model import RESERVED, BlockSource, Rule, TemplateInfo
from correspondence.rendering.sandbox import ENV, KNOWN_GLOBALS
from correspondence.rendering.state import rels_name

MAX_TEMPLATE_BYTES = 20 * 1024 * 1024  # the largest template or block file, here and at check-in (the service's)
_BOOKMARK_ID = re.compile(r'<w:bookmark(?:Start|End)\b[^>]*?\bw:id="(\d+)"')
_PGNUM_SUCCESSORS = ("cols", "formProt", "vAlign", "noEndnote", "titlePg", "textDirection", "bidi", "rtlGutter",
                     "docGrid", "printerSettings", "sectPrChange")


@dataclass(frozen=True)
class _Source:
    part: str
    source: str
    tree: nodes.Template


@dataclass(frozen=True)
class _Analysis:
    members: dict[str, bytes]
    main: str
    body: dp.BodySource
    body_src: _Source
    inclusions: list[blk.Inclusion]
    parts: list[_Source]
    info: TemplateInfo


@dataclass(frozen=True)
class CompiledPart:
    """A header, footer or notes part with Jinja in it."""

    name: str
    source: str
    template: Template


@dataclass(frozen=True, eq=False)
class CompiledTemplate:
    """A template with its blocks and rules expanded and every part compiled; immutable, shareable by threads."""

    info: TemplateInfo
    main: str
    prefix: str
    suffix: str
    sect_pr: str
    body_open: str
    body_source: str
    body_template: Template
    fix_tables: bool
    parts: tuple[CompiledPart, ...]
    static: tuple[tuple[str, bytes], ...]      # members written unchanged, [Content_Types].xml first
    rels: Mapping[str, str | None]             # rendered part -> its .rels text (None: it has none)
    images: Mapping[str, bytes]
    batch_break: str                           # paragraph ending a letter's section in a batch
    batch_sect_pr: str                         # the final section properties in a batch
    bookmark_stride: int


def parse_checked(source: str, part: str, *, env: Environment = ENV,
                  no_includes: str = "letters; use {{ block('name') }} for shared content") -> nodes.Template:
    """The parsed template, refused (TemplateSyntaxError / TemplateSecurityError, saying where) when it does not
    parse, includes, imports or extends (`no_includes` says what instead), or reads what the sandbox forbids."""
    try:
        tree = env.parse(source)
    except JinjaSyntaxError as exc:
        raise syntax_error(env, exc, source, part) from None
    for node in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        tag, paragraph, line = node_location(source, node)
        raise TemplateSyntaxError(f"include, import and extends are not available in {no_includes} ({part})",
                                  tag=tag, paragraph=paragraph, part=part, line=line)
    found = unsafe_access(tree)
    if found:
        what, line = found
        tag, paragraph, line = node_location(source, _node_on_line(tree, line), "_")
        raise TemplateSecurityError(f"the template reads {what}, which the rendering sandbox forbids ({part})",
                                    tag=tag, paragraph=paragraph, part=part, line=line)
    return tree


def _parse(part: str, source: str) -> _Source:
    return _Source(part=part, source=source, tree=parse_checked(source, part))


def _node_on_line(tree: nodes.Template, line: int) -> nodes.Node:
    return next((n for n in tree.find_all(nodes.Expr) if n.lineno == line), tree)


def _image_calls(tree: nodes.Template) -> list[nodes.Call]:
    return [c for c in tree.find_all(nodes.Call) if isinstance(c.node, nodes.Name) and c.node.name == "image"]


def _too_large(what: str = "the file", **where: object) -> TemplateSyntaxError:
    return TemplateSyntaxError(f"{what} is larger than {MAX_TEMPLATE_BYTES // (1024 * 1024)} MiB, the most a "
                               "template or content block may be", tag="", paragraph="", part="",
                               max_bytes=MAX_TEMPLATE_BYTES, **where)


def _analyse(data: bytes, *, composed: bool = False) -> _Analysis:
    """Read and parse a template; `composed` is one with its blocks merged in, which may be larger than a file."""
    if not isinstance(data, bytes):
        raise dp.bad_docx()
    if len(data) > MAX_TEMPLATE_BYTES and not composed:
        raise _too_large()
    members = dp.read_members(data)
    main = dp.main_part(members)
    body = dp.split_body(members[main])
    body_src = _parse(main, dp.patch(body.inner))
    inclusions = blk.find_inclusions(body_src.source, main)
    blk.check_calls(body_src.tree, body_src.source, inclusions, main)
    parts = []
    for name in dp.jinja_parts(members, main):
        source = _parse(name, dp.patch(dp.part_source(members[name], name)))
        blk.check_calls(source.tree, source.source, [], name, allowed=False)
        parts.append(source)
    variables: set[str] = set()
    has_images = False
    for src in [body_src, *parts]:
        try:
            variables |= meta.find_undeclared_variables(src.tree)
        except JinjaSyntaxError as exc:  # found by compiling: an unknown filter or test, say
            raise syntax_error(ENV, exc, src.source, src.part) from None
        has_images = has_images or bool(_image_calls(src.tree)) or "<w:drawing" in src.source \
            or "<w:pict" in src.source
    info = TemplateInfo(variables=frozenset(variables - set(RESERVED) - KNOWN_GLOBALS),
                        blocks=frozenset(i.name for i in inclusions if i.kind == "block"),
                        slots=frozenset(i.name for i in inclusions if i.kind == "slot"), has_images=has_images,
                        block_places={i.name: (i.tag, i.paragraph) for i in reversed(inclusions)
                                      if i.kind == "block"})
    return _Analysis(members=members, main=main, body=body, body_src=body_src, inclusions=inclusions, parts=parts,
                     info=info)


def inspect_template(docx: BinaryIO) -> TemplateInfo:
    """What a template reads and includes; TemplateSyntaxError/TemplateSecurityError naming the tag if it is bad."""
    return _analyse(docx.read()).info


def _check_image_names(analysis: _Analysis, images: Mapping[str, bytes]) -> None:
    for src in [analysis.body_src, *analysis.parts]:
        for call in _image_calls(src.tree):
            if call.args and isinstance(call.args[0], nodes.Const) and isinstance(call.args[0].value, str) \
                    and call.args[0].value not in images:
                tag, paragraph, line = node_location(src.source, call, "image(")
                raise RenderError(f"the template places the image {call.args[0].value!r}, which was not given "
                                  "with it", tag=tag, paragraph=paragraph, part=src.part, line=line)


def _block_sources(analysis: _Analysis, data: bytes, blocks: Mapping[str, BlockSource],
                   rules: Sequence[Rule]) -> tuple[_Analysis, dict[str, str]]:
    needed = blk.needed_blocks(analysis.inclusions, rules)
    for name, inc in needed.items():
        if name not in blocks:
            raise UnknownBlockError(f"the template includes the content block {name!r}, which does not exist "
                                    "(or is not approved)", block=name, tag=inc.tag, paragraph=inc.paragraph,
                                    part=analysis.main, line=inc.line)
    if not needed:
        return analysis, {}
    for name in needed:
        if len(blocks[name].docx) > MAX_TEMPLATE_BYTES:
            raise _too_large(f"the content block {name!r}", block=name)
    composed, bodies = blk.compose(data, {name: blocks[name].docx for name in needed})
    sources = {}
    for name, xml in bodies.items():
        source = dp.patch(xml)
        blk.check_block_source(name, source)
        _parse(f"block {name!r}", source)
        sources[name] = source
    return _analyse(composed, composed=True), sources


def _table_fix_needed(analysis: _Analysis, block_sources: Mapping[str, str]) -> bool:
    # docxtpl's {%tc %}, colspan and hm tags are gone after patching: look for them in the text as typed.
    typed = [analysis.body.inner, *block_sources.values()]
    return any(dp.needs_table_fix(re.sub(r"<[^>]+>", "", xml)) for xml in typed)


def _sect_pr_for_batch(body_open: str, sect_pr: str) -> str:
    """The section properties with 'next page' and page numbers restarting at 1, for one letter of a batch."""
    w = f"{{{dp.W_NS}}}"
    body = etree.fromstring(f"{body_open}{sect_pr or '<w:sectPr/>'}</w:body>")
    element = body[0]
    for old in element.findall(f"{w}type"):
        element.remove(old)
    kind = etree.Element(f"{w}type")
    kind.set(f"{w}val", "nextPage")
    skip = {f"{w}{t}" for t in ("headerReference", "footerReference", "footnotePr", "endnotePr")}
    position = next((i for i, child in enumerate(element) if child.tag not in skip), len(element))
    element.insert(position, kind)
    numbering = element.find(f"{w}pgNumType")
    if numbering is None:
        numbering = etree.Element(f"{w}pgNumType")
        after = {f"{w}{t}" for t in _PGNUM_SUCCESSORS}
        position = next((i for i, child in enumerate(element) if child.tag in after), len(element))
        element.insert(position, numbering)
    numbering.set(f"{w}start", "1")
    return dp.strip_namespaces(etree.tostring(element, encoding="unicode"), body.nsmap)


# A paragraph one twip high: what separates two letters takes no room on either page.
_TINY = '<w:spacing w:before="0" w:after="0" w:line="20" w:lineRule="exact"/>'
_PAGE_FIELD = re.compile(r"\b(?:PAGE|NUMPAGES|SECTIONPAGES)\b")


def _needs_sections(body_source: str, sect_pr: str, static: list[tuple[str, bytes]]) -> bool:
    """Whether the letters of a batch must each be a section of their own: when page numbers must restart per
    letter, a first-page header must repeat per letter, even and odd pages have their own headers, or the
    template has sections of its own. Otherwise a
    page break separates them: LibreOffice lays out 250 one-page letters about a quarter faster that way."""
    if "<w:sectPr" in body_source or "<w:titlePg" in sect_pr or _PAGE_FIELD.search(body_source):
        return True
    for name, content in static:
        if name == "word/settings.xml" and b"<w:evenAndOddHeaders" in content:
            return True  # with page breaks, every other letter would start on an even page's header
        if re.match(r"^word/(header|footer)\d*\.xml$", name) and _PAGE_FIELD.search(content.decode("utf-8",
                                                                                                     "replace")):
            return True
    return False


def _compile(part: str, source: str) -> Template:
    try:
        return ENV.from_string(source)
    except JinjaSyntaxError as exc:
        raise syntax_error(ENV, exc, source, part) from None


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise dp.bad_docx() from None


def _content_types(data: bytes) -> bytes:
    """[Content_Types].xml with defaults for the picture types image() may add."""
    text = _text(data)
    missing = [ext for ext in ("png", "jpeg", "gif")
               if not re.search(rf'Extension="{ext}"', text, re.IGNORECASE)]
    if not missing:
        return data
    if "</Types>" not in text:
        raise dp.bad_docx()
    extra = "".join(f'<Default Extension="{ext}" ContentType="{IMAGE_TYPES[ext]}"/>' for ext in missing)
    end = text.index("</Types>")
    return (text[:end] + extra + text[end:]).encode("utf-8")


def compile_template(docx: BinaryIO, *, blocks: Mapping[str, BlockSource], rules: Sequence[Rule] = (),
                     images: Mapping[str, bytes] | None = None) -> CompiledTemplate:
    """Expand blocks and slots, patch and compile every part once; the result is meant to be cached and reused."""
    data = docx.read()
    named = check_named_images(images or {})
    for rule in rules:
        check_condition(rule.condition)
    analysis = _analyse(data)
    _check_image_names(analysis, named)
    analysis, block_sources = _block_sources(analysis, data, blocks, rules)
    body_source = blk.expand(analysis.body_src.source, analysis.inclusions, rules, block_sources)
    body_template = _compile(analysis.main, body_source)
    parts = tuple(CompiledPart(name=s.part, source=s.source, template=_compile(s.part, s.source))
                  for s in analysis.parts if "{{" in s.source or "{%" in s.source)
    rendered = {analysis.main, *(p.name for p in parts)}
    rels = {name: _text(analysis.members[rels_name(name)]) if rels_name(name) in analysis.members else None
            for name in rendered}
    skip = rendered | {rels_name(name) for name in rendered}
    static = [("[Content_Types].xml", _content_types(analysis.members["[Content_Types].xml"]))]
    static += [(name, content) for name, content in analysis.members.items()
               if name not in skip and name != "[Content_Types].xml"]
    ids = [int(i) for i in _BOOKMARK_ID.findall(body_source)]
    batch_sect_pr = _sect_pr_for_batch(analysis.body.body_open, analysis.body.sect_pr)
    if _needs_sections(body_source, analysis.body.sect_pr or "", static):
        batch_break = (f'<w:p><w:pPr>{_TINY}<w:rPr><w:sz w:val="2"/><w:szCs w:val="2"/></w:rPr>{batch_sect_pr}'
                       '</w:pPr></w:p>')
    else:
        batch_break = (f'<w:p><w:pPr>{_TINY}</w:pPr><w:r><w:rPr><w:sz w:val="2"/><w:szCs w:val="2"/></w:rPr>'
                       '<w:br w:type="page"/></w:r></w:p>')
    return CompiledTemplate(
        info=analysis.info, main=analysis.main, prefix=analysis.body.prefix, suffix=analysis.body.suffix,
        sect_pr=analysis.body.sect_pr, body_open=analysis.body.body_open, body_source=body_source,
        body_template=body_template, fix_tables=_table_fix_needed(analysis, block_sources), parts=parts,
        static=tuple(static), rels=MappingProxyType(rels), images=MappingProxyType(named),
        batch_break=batch_break, batch_sect_pr=batch_sect_pr, bookmark_stride=max(ids, default=-1) + 2)
