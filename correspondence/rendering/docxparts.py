"""Reading a DOCX into the sources Jinja compiles, using docxtpl's own XML patching.

The body of word/document.xml is split from the document element around it and from its final section
properties, so one compiled body can be rendered once per letter; headers, footers, footnotes and endnotes are
whole-part sources.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from dataclasses import dataclass

from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docxtpl import DocxTemplate
from lxml import etree

from correspondence.errors import TemplateSyntaxError
from correspondence.rendering.state import RELS_NS, rels_name

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
CT_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
DOCUMENT_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
OTHER_MAIN = {  # main parts of Word files that are not plain documents
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml": "a Word template (.dotx)",
    "application/vnd.ms-word.document.macroEnabled.main+xml": "a macro-enabled Word document (.docm)",
    "application/vnd.ms-word.template.macroEnabledTemplate.main+xml": "a macro-enabled Word template (.dotm)",
}
MAX_MEMBERS = 2000
MAX_UNPACKED = 200 * 1024 * 1024
JINJA_PART_TYPES = (RT.HEADER, RT.FOOTER, RT.FOOTNOTES, RT.ENDNOTES)
_MARKER = "POSTROOM-BODY-MARKER"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True, huge_tree=False)
_PATCHER = DocxTemplate(None)  # patch_xml, fix_tables and resolve_listing use no per-document state
_ENTITIES_IN_TAGS = re.compile(r"(?<=\{[\{%])(.*?)(?=[\}%]\})", re.DOTALL)
_ENTITY = {"&amp;": "&", "&quot;": '"', "&apos;": "'", "&#39;": "'", "&#34;": '"'}
_WORD_IDS = re.compile(r' w14:(?:paraId|textId)="[^"]*"')
_P_START = re.compile(r"<w:p([ >])")
_NEEDS_TABLE_FIX = re.compile(r"\{[%{]-?\s*tc\s|\{%-?\s*(?:colspan|hm)\b")


def bad_docx(what: str = "the file") -> TemplateSyntaxError:
    """The error for something that is not a DOCX we can read."""
    return TemplateSyntaxError(f"{what} is not a valid DOCX document (a Word .docx file)", tag="", paragraph="",
                               part="")


def read_members(data: bytes, what: str = "the file") -> dict[str, bytes]:
    """The members of a DOCX zip, refusing archive bombs and non-zips."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_MEMBERS or sum(i.file_size for i in infos) > MAX_UNPACKED:
                raise bad_docx(what)
            members = {i.filename: archive.read(i) for i in infos if not i.is_dir()}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError, RuntimeError):
        raise bad_docx(what) from None
    if "[Content_Types].xml" not in members:
        raise bad_docx(what)
    return members


def parse(data: bytes, what: str = "the file") -> etree._Element:
    """An XML part, without entities or DTDs."""
    if b"<!DOCTYPE" in data[:4096] or b"<!ENTITY" in data[:4096]:
        raise bad_docx(what)
    try:
        return etree.fromstring(data, _PARSER)
    except (etree.XMLSyntaxError, ValueError):
        raise bad_docx(what) from None


def relationships(members: dict[str, bytes], part: str) -> list[tuple[str, str, str, bool]]:
    """(Id, Type, target member name, external) of a part's relationships."""
    data = members.get(rels_name(part))
    if data is None:
        return []
    out = []
    for rel in parse(data).iter(f"{{{RELS_NS}}}Relationship"):
        external = rel.get("TargetMode") == "External"
        target = rel.get("Target", "")
        if not external:
            target = target.lstrip("/") if target.startswith("/") else \
                posixpath.normpath(posixpath.join(posixpath.dirname(part), target))
        out.append((rel.get("Id", ""), rel.get("Type", ""), target, external))
    return out


def content_type(members: dict[str, bytes], part: str) -> str:
    """The content type [Content_Types].xml gives a member (its Override, else its extension's Default)."""
    types = parse(members["[Content_Types].xml"], "[Content_Types].xml")
    name = "/" + part.lower()
    for override in types.iter(f"{{{CT_NS}}}Override"):
        if override.get("PartName", "").lower() == name:
            return override.get("ContentType", "")
    extension = posixpath.splitext(part)[1][1:].lower()
    for default in types.iter(f"{{{CT_NS}}}Default"):
        if default.get("Extension", "").lower() == extension:
            return default.get("ContentType", "")
    return ""


def main_part(members: dict[str, bytes], what: str = "the file") -> str:
    """The member holding the main document (word/document.xml in practice).

    TemplateSyntaxError (422) unless it is a plain document's: Word's templates (.dotx) and macro-enabled files
    (.docm, .dotm) have a word/document.xml too, but python-docx cannot open them, and macros have no place here."""
    for _rid, reltype, target, _ext in relationships(members, ""):
        if reltype == RT.OFFICE_DOCUMENT and target in members:
            kind = content_type(members, target)
            if kind != DOCUMENT_MAIN:
                raise TemplateSyntaxError(
                    f"{what} is {OTHER_MAIN.get(kind, 'not a Word document')}, not a Word document (.docx): open "
                    "it in Word and save it as \"Word Document (*.docx)\"", tag="", paragraph="", part=target,
                    content_type=kind)
            return target
    raise bad_docx(what)


def jinja_parts(members: dict[str, bytes], main: str) -> list[str]:
    """Headers, footers, footnotes and endnotes of the main document, in relationship order."""
    seen: list[str] = []
    for _rid, reltype, target, external in relationships(members, main):
        if reltype in JINJA_PART_TYPES and not external and target in members and target not in seen:
            seen.append(target)
    return seen


def patch(xml: str) -> str:
    """docxtpl's patching (joins tags split across runs, {%p %}/{%tr %}...), plus what it leaves undone."""
    xml = _PATCHER.patch_xml(xml)
    # Word escapes & and quotes inside tags; Jinja must see them as typed.
    xml = _ENTITIES_IN_TAGS.sub(lambda m: re.sub(r"&(?:amp|quot|apos|#39|#34);",
                                                 lambda e: _ENTITY[e.group(0)], m.group(0)), xml)
    # Word's paragraph ids must be unique; copies of a paragraph (loops, batches) would repeat them.
    xml = _WORD_IDS.sub("", xml)
    return _P_START.sub(r"\n<w:p\1", xml)


def unpatch(xml: str) -> str:
    """Undo the line breaks `patch` added and docxtpl's escaped braces, as docxtpl does after rendering."""
    xml = xml.replace("\n<w:p", "<w:p")
    if "{_" in xml or "_}" in xml:
        xml = xml.replace("{_{", "{{").replace("}_}", "}}").replace("{_%", "{%").replace("%_}", "%}")
    if "\n" in xml or "\t" in xml:  # line breaks and tabs in the data become <w:br/> and <w:tab/>
        xml = _PATCHER.resolve_listing(xml)
    return xml


def needs_table_fix(xml: str) -> bool:
    """Whether the template may change a table's column count ({%tc %}, colspan, hm), as docxtpl fixes."""
    return bool(_NEEDS_TABLE_FIX.search(xml))


def fix_tables(body_open: str, inner: str) -> str:
    """docxtpl's grid fix for tables whose column count changed while rendering."""
    tree = _PATCHER.fix_tables(f"{body_open}{inner}</w:body>")
    text = etree.tostring(tree, encoding="unicode")
    return text[text.index(">") + 1:text.rindex("</w:body>")] if not text.endswith("/>") else ""


@dataclass(frozen=True)
class BodySource:
    """The main document split for per-letter rendering."""

    prefix: str       # XML declaration, document element start tag, <w:body...>
    body_open: str    # the body start tag with every namespace in scope (for re-parsing fragments)
    inner: str        # the body's content without its final sectPr, unpatched
    sect_pr: str      # the final <w:sectPr> (or "")
    suffix: str       # </w:body></w:document>
    nsmap: dict[str | None, str]


def split_body(data: bytes) -> BodySource:
    """Split word/document.xml into prefix, body content, final section properties and suffix."""
    root = parse(data, "word/document.xml")
    body = root.find(f"{{{W_NS}}}body")
    if body is None:
        raise bad_docx()
    sect_pr = ""
    if len(body) and body[-1].tag == f"{{{W_NS}}}sectPr":
        last = body[-1]
        body.remove(last)
        sect_pr = _strip_ns(etree.tostring(last, encoding="unicode"), root.nsmap)
    body_xml = etree.tostring(body, encoding="unicode")
    if body_xml.endswith("/>"):
        body_open, inner = body_xml[:-2] + ">", ""
    else:
        body_open = body_xml[:body_xml.index(">") + 1]
        inner = body_xml[len(body_open):body_xml.rindex("</w:body>")]
    for child in list(body):
        body.remove(child)
    body.text = _MARKER
    doc = etree.tostring(root, encoding="unicode")
    head, tail = doc.split(_MARKER)
    prefix = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + head
    return BodySource(prefix=prefix, body_open=body_open, inner=inner, sect_pr=sect_pr, suffix=tail,
                      nsmap=dict(root.nsmap))


def part_source(data: bytes, name: str) -> str:
    """A whole part (header, footer, notes) as text for patching."""
    return etree.tostring(parse(data, name), encoding="unicode")


def _strip_ns(xml: str, nsmap: dict[str | None, str]) -> str:
    """Drop the namespace declarations a fragment repeats from the document element."""
    def keep(match: re.Match[str]) -> str:
        return "" if nsmap.get(match.group(1)) == match.group(2) else match.group(0)
    head_end = xml.index(">")
    return re.sub(r' xmlns:(\w+)="([^"]*)"', keep, xml[:head_end]) + xml[head_end:]


def strip_namespaces(xml: str, nsmap: dict[str | None, str]) -> str:
    """`_strip_ns` for every element start tag of a fragment serialised element by element."""
    return re.sub(r' xmlns:(\w+)="([^"]*)"',
                  lambda m: "" if nsmap.get(m.group(1)) == m.group(2) else m.group(0), xml)
