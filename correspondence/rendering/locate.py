"""Say where a problem is: the Jinja tag and the plain text of the paragraph around it.

Compiled sources have a line break before every `<w:p`, as docxtpl does, so a Jinja line number points at one
paragraph.
"""

from __future__ import annotations

import html
import re
from types import TracebackType

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError as JinjaSyntaxError

from correspondence.errors import TemplateSyntaxError

TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_XML_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_OPENERS = {"if", "for", "macro", "call", "filter", "with", "autoescape", "raw", "trans"}
MAX_PARAGRAPH = 200


def plain_text(xml: str, limit: int = MAX_PARAGRAPH) -> str:
    """The visible text of an XML fragment (Jinja tags included), at most `limit` characters."""
    text = _SPACE.sub(" ", html.unescape(_XML_TAG.sub("", xml))).strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"


def line_of(source: str, lineno: int | None) -> str:
    """Line `lineno` (1-based) of a compiled source, or '' when out of range."""
    lines = source.split("\n")
    if not lineno or lineno < 1 or lineno > len(lines):
        return ""
    return lines[lineno - 1]


def tags_in(xml: str) -> list[str]:
    """The Jinja tags in an XML fragment, as typed (XML markup inside them removed)."""
    return [plain_text(m.group(0), 10_000) for m in TAG.finditer(xml)]


def _keyword(tag: str) -> str:
    match = re.match(r"\{%-?\s*(\w+)", tag)
    return match.group(1) if match else ""


def _parses_alone(env: object, tag: str) -> bool:
    keyword = _keyword(tag)
    if tag.startswith("{#"):
        return True
    if keyword in _OPENERS or keyword == "set" and "=" not in tag:
        candidates = [tag + "{% end" + keyword + " %}"]
    elif keyword in ("elif", "else"):
        candidates = ["{% if 1 %}" + tag + "{% endif %}", "{% for x in y %}" + tag + "{% endfor %}"]
    elif keyword.startswith("end"):
        return True
    else:
        candidates = [tag]
    for candidate in candidates:
        try:
            env.parse(candidate)  # type: ignore[attr-defined]
            return True
        except JinjaSyntaxError:
            continue
    return False


def _unclosed(source: str) -> tuple[str, int] | None:
    stack: list[tuple[str, str, int]] = []
    for match in TAG.finditer(source):
        tag = plain_text(match.group(0), 10_000)
        keyword = _keyword(tag)
        lineno = source.count("\n", 0, match.start()) + 1
        if keyword in _OPENERS or keyword == "set" and "=" not in tag:
            stack.append((keyword, tag, lineno))
        elif keyword.startswith("end") and stack and stack[-1][0] == keyword[3:]:
            stack.pop()
    return (stack[-1][1], stack[-1][2]) if stack else None


def syntax_error(env: object, exc: JinjaSyntaxError, source: str, part: str) -> TemplateSyntaxError:
    """Our TemplateSyntaxError for Jinja's, naming the offending tag and its paragraph."""
    lineno = exc.lineno or 1
    line = line_of(source, lineno)
    tags = tags_in(line)
    tag = ""
    unknown = re.search(r"unknown tag '(\w+)'", exc.message or "")
    if unknown:
        tag = next((t for t in tags if _keyword(t) == unknown.group(1)), "")
    elif "Unexpected end of template" in (exc.message or ""):
        found = _unclosed(source)
        if found:
            tag, lineno = found
            line = line_of(source, lineno)
    if not tag:
        tag = next((t for t in tags if not _parses_alone(env, t)), tags[0] if tags else "")
    paragraph = plain_text(line)
    detail = f"the template does not parse: {exc.message}"
    if tag:
        detail += f", at {tag[:100]}"
    if paragraph:
        detail += f" in the paragraph \"{paragraph[:100]}\""
    return TemplateSyntaxError(f"{detail} ({part})", tag=tag[:200], paragraph=paragraph, part=part, line=lineno)


def node_location(source: str, node: nodes.Node, needle: str = "") -> tuple[str, str, int]:
    """(tag, paragraph, line) of a parsed node: the tag on its line that contains `needle`."""
    line = line_of(source, node.lineno)
    tags = tags_in(line)
    tag = next((t for t in tags if needle and needle in t), tags[0] if tags else "")
    return tag[:200], plain_text(line), node.lineno


def template_line(tb: TracebackType | None) -> int | None:
    """The template line the innermost template frame of a traceback was executing."""
    lineno = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return lineno


def runtime_location(source: str, exc: BaseException, needle: str = "") -> dict[str, object]:
    """Where a render failed: {tag, paragraph, line} as far as the traceback tells."""
    lineno = template_line(exc.__traceback__)
    if lineno is None:
        return {}
    line = line_of(source, lineno)
    tags = [t for t in tags_in(line) if t.startswith("{{") or t.startswith("{%")]
    tag = next((t for t in tags if needle and needle in t), tags[0] if tags else "")
    return {"tag": tag[:200], "paragraph": plain_text(line), "line": lineno}
