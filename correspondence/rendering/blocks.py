"""Content blocks and targeting slots, expanded at compile time.

`{{ block('legal') }}` and `{{ slot('promotion') }}` must stand alone in their paragraph (or be written
`{{p block('legal') }}`); the paragraph is replaced by the block's body. A slot becomes
`{% if rule1 %}block1{% elif rule2 %}block2{% endif %}` over the template's rules for it, in order. Blocks are
merged into the template with docxcompose (as docxtpl's sub-documents are), which brings their styles,
numbering, pictures and footnotes along.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from docx import Document
from docxcompose.composer import Composer
from jinja2 import nodes
from lxml import etree

from correspondence.errors import TemplateSyntaxError
from correspondence.rendering.checks import condition_source
from correspondence.rendering.docxparts import W_NS, strip_namespaces
from correspondence.rendering.locate import node_location, plain_text, tags_in
from correspondence.rendering.model import Rule

KINDS = ("block", "slot")
CALL = re.compile(r"""\{\{-?\s*(block|slot)\s*\(\s*(?:'([^'\\{}<>]*)'|"([^"\\{}<>]*)")\s*\)\s*-?\}\}""")
_ANY_CALL = re.compile(r"\b(?:block|slot)\s*\(")


@dataclass(frozen=True)
class Inclusion:
    """A standalone block() or slot() tag and the span of the source it replaces."""

    kind: str
    name: str
    start: int
    end: int
    tag: str
    paragraph: str
    line: int


def find_inclusions(source: str, part: str) -> list[Inclusion]:
    """The standalone block()/slot() tags of a patched source, in order."""
    found = []
    for match in CALL.finditer(source):
        start, end = match.start(), match.end()
        opened = max(source.rfind("<w:p>", 0, start), source.rfind("<w:p ", 0, start))
        if opened > source.rfind("</w:p>", 0, start):
            close = source.find("</w:p>", end)
            paragraph_xml = source[opened:close + len("</w:p>")]
            if plain_text(paragraph_xml.replace(match.group(0), "", 1)):
                raise TemplateSyntaxError(
                    f"{match.group(0)} must stand alone in its paragraph: the paragraph is replaced by the "
                    f"content ({part})", tag=match.group(0), paragraph=plain_text(paragraph_xml), part=part,
                    line=source.count("\n", 0, start) + 1)
            start, end = opened - (source[opened - 1:opened] == "\n"), close + len("</w:p>")
            paragraph = plain_text(paragraph_xml)
        else:
            paragraph = match.group(0)
        found.append(Inclusion(kind=match.group(1), name=match.group(2) if match.group(2) is not None
                               else match.group(3), start=start, end=end, tag=match.group(0),
                               paragraph=paragraph, line=source.count("\n", 0, match.start()) + 1))
    return found


def check_calls(tree: nodes.Template, source: str, inclusions: list[Inclusion], part: str, *,
                allowed: bool = True) -> None:
    """Every block()/slot() call is a standalone tag with a literal name (and only where they are allowed)."""
    expected = Counter((i.kind, i.name, i.line) for i in inclusions)
    for call in tree.find_all(nodes.Call):
        if not isinstance(call.node, nodes.Name) or call.node.name not in KINDS:
            continue
        kind = call.node.name
        tag, paragraph, line = node_location(source, call, f"{kind}(")
        if not allowed:
            raise TemplateSyntaxError(f"{kind}() can only be used in the body of the document, not in {part}",
                                      tag=tag, paragraph=paragraph, part=part, line=line)
        literal = len(call.args) == 1 and not call.kwargs and not call.dyn_args and not call.dyn_kwargs \
            and isinstance(call.args[0], nodes.Const) and isinstance(call.args[0].value, str)
        if not literal:
            raise TemplateSyntaxError(f"{kind}() takes the {kind}'s name as a quoted string, e.g. {kind}('legal')",
                                      tag=tag, paragraph=paragraph, part=part, line=line)
        key = (kind, call.args[0].value, call.lineno)
        if expected[key] <= 0:
            raise TemplateSyntaxError(f"{kind}() must be a tag of its own, {{{{ {kind}('name') }}}}, standing alone "
                                      f"in its paragraph", tag=tag, paragraph=paragraph, part=part, line=line)
        expected[key] -= 1


def needed_blocks(inclusions: list[Inclusion], rules: Sequence[Rule]) -> dict[str, Inclusion]:
    """Each block the template needs (directly or through a slot's rules), with the tag that needs it."""
    needed: dict[str, Inclusion] = {}
    for inc in inclusions:
        if inc.kind == "block":
            needed.setdefault(inc.name, inc)
        else:
            for rule in rules:
                if rule.slot == inc.name:
                    needed.setdefault(rule.block, inc)
    return needed


def compose(template: bytes, blocks: Mapping[str, bytes]) -> tuple[bytes, dict[str, str]]:
    """Merge the blocks' styles, numbering and pictures into the template; return it and each block's body XML."""
    try:
        doc = Document(io.BytesIO(template))
        composer = Composer(doc)
    except Exception:  # python-docx raises many kinds for a package it cannot read: a 422, never a 500
        raise TemplateSyntaxError("the template cannot be opened as a Word document to include its blocks; save "
                                  "it again from Word as a plain document (.docx)", tag="", paragraph="",
                                  part="") from None
    body = doc.element.body
    nsmap = dict(doc.element.nsmap)
    bodies: dict[str, str] = {}
    for name, data in blocks.items():
        try:
            block_doc = Document(io.BytesIO(data))
        except Exception:  # python-docx raises many kinds for a broken package
            raise TemplateSyntaxError(f"the content block {name!r} is not a valid DOCX document", tag="",
                                      paragraph="", block=name) from None
        before = len(body)
        index = composer.append_index()
        try:
            composer.insert(index, block_doc)
        except Exception as exc:  # docxcompose meets parts it cannot carry over
            raise TemplateSyntaxError(f"the content block {name!r} cannot be included ({type(exc).__name__}); "
                                      "save it again from Word as a plain document", tag="", paragraph="",
                                      block=name) from None
        added = list(body)[index:index + len(body) - before]
        xml = []
        for element in added:
            for sect_pr in element.iter(f"{{{W_NS}}}sectPr"):  # a block brings no section breaks
                sect_pr.getparent().remove(sect_pr)
            xml.append(etree.tostring(element, encoding="unicode"))
            body.remove(element)
        bodies[name] = strip_namespaces("".join(xml), nsmap)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue(), bodies


def check_block_source(name: str, source: str) -> None:
    """A block may use Jinja but may not include other blocks or slots."""
    for tag in tags_in(source):
        if _ANY_CALL.search(tag):
            raise TemplateSyntaxError(
                f"the content block {name!r} includes {tag[:80]}: blocks may not include other blocks or slots",
                tag=tag[:200], paragraph="", block=name)


def slot_source(name: str, rules: Sequence[Rule], block_sources: Mapping[str, str]) -> str:
    """The if/elif chain of a slot's rules (empty when it has none)."""
    chain = [rule for rule in rules if rule.slot == name]
    if not chain:
        return ""
    out = []
    for i, rule in enumerate(chain):
        condition = condition_source(rule.condition)
        out.append(f"{{% {'if' if i == 0 else 'elif'} ({condition}) %}}{block_sources[rule.block]}")
    return "".join(out) + "{% endif %}"


def expand(source: str, inclusions: list[Inclusion], rules: Sequence[Rule], block_sources: Mapping[str, str]) -> str:
    """The source with every block()/slot() paragraph replaced by its content."""
    out, pos = [], 0
    for inc in inclusions:
        out.append(source[pos:inc.start])
        out.append(block_sources[inc.name] if inc.kind == "block" else slot_source(inc.name, rules, block_sources))
        pos = inc.end
    out.append(source[pos:])
    return "".join(out)
