"""Postroom's document metadata in a PDF: XMP (dc:title plus a postroom namespace) and the Info dictionary.

The XMP packet is rebuilt from the one LibreOffice wrote (its pdfaid part/conformance, producer and dates kept)
with one more rdf:Description holding dc:title and the postroom fields, and the Info dictionary gets the same
title, so the two agree as PDF/A requires. PDF/A also requires every custom XMP namespace to be described by a
pdfaExtension schema in the same packet, so that description is added when the file claims PDF/A; without it
the letter would stop validating. The base packet is parsed once per batch (`apply_metadata` is called for
every letter split from it), which is what makes stamping a few hundred letters cheap.
"""

from __future__ import annotations

import copy
import functools
import io
import re
from xml.sax.saxutils import escape

import pikepdf
from lxml import etree
from pikepdf.models.metadata import XMP_NS_PDFA_EXTENSION, XMP_NS_PDFA_PROPERTY, XMP_NS_PDFA_SCHEMA, XMP_NS_RDF

from output.errors import ComposeError

POSTROOM_NS = "urn:postroom:xmp:letter:1.0/"
POSTROOM_PREFIX = "postroom"
_FIELDS = {"letterId": "The letter's id", "template": "The template's name",
           "templateVersion": "The template's version", "extra": "Further key=value pairs, one a line"}
_INFO_KEYS = {"letterId": "/PostroomLetterId", "template": "/PostroomTemplate",
              "templateVersion": "/PostroomTemplateVersion"}
_DC = "http://purl.org/dc/elements/1.1/"
_PDFAID = "http://www.aiim.org/pdfa/ns/id/"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_EMPTY = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>'
          b"</x:xmpmeta>")
_PARSER = etree.XMLParser(remove_blank_text=False, resolve_entities=False, no_network=True)

pikepdf.models.PdfMetadata.register_xml_namespace(POSTROOM_NS, POSTROOM_PREFIX)


@functools.lru_cache(maxsize=8)
def _base(packet: bytes) -> tuple[etree._Element, bool]:
    """The parsed XMP of a batch (or of one PDF) without any dc:title, and whether it claims PDF/A."""
    body = packet.strip()
    if body.startswith(b"<?xpacket"):
        body = body[body.index(b"?>") + 2:]
    end = body.rfind(b"<?xpacket")
    if end >= 0:
        body = body[:end]
    try:
        root = etree.fromstring(body.strip() or _EMPTY, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise ComposeError(f"the PDF's XMP metadata is not well-formed: {exc}") from exc
    if root.tag != "{adobe:ns:meta/}xmpmeta":  # a bare rdf:RDF packet
        wrapper = etree.fromstring(_EMPTY, _PARSER)
        wrapper.remove(wrapper[0])
        wrapper.append(root)
        root = wrapper
    rdf = root.find(f"{{{XMP_NS_RDF}}}RDF")
    if rdf is None:
        raise ComposeError("the PDF's XMP has no rdf:RDF element")
    for title in rdf.iter(f"{{{_DC}}}title"):
        title.getparent().remove(title)
    pdfa = any(el.text for el in rdf.iter(f"{{{_PDFAID}}}part")) or any(
        desc.get(f"{{{_PDFAID}}}part") for desc in rdf.iter(f"{{{XMP_NS_RDF}}}Description"))
    return root, pdfa


_SLOT = "postroom-letter-fields"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@functools.lru_cache(maxsize=8)
def _frame(packet: bytes) -> tuple[str, str]:
    """The base packet serialised around the place where a letter's fields go (with the pdfaExtension
    description already in place when the file claims PDF/A): stamping a letter is then string work."""
    template, pdfa = _base(packet)
    root = copy.deepcopy(template)
    rdf = root.find(f"{{{XMP_NS_RDF}}}RDF")
    rdf.append(etree.Comment(_SLOT))
    if pdfa:
        _describe_namespace(rdf)
    before, after = etree.tostring(root, encoding="unicode").split(f"<!--{_SLOT}-->")
    return before, after


def _text(value: str) -> str:
    return escape(_NOT_XML.sub("", value))


def letter_xmp(base: bytes, *, title: str, values: dict[str, str]) -> bytes:
    """An XMP packet: the base packet's content plus dc:title and the postroom fields (and, for PDF/A, the
    pdfaExtension description of the postroom namespace)."""
    before, after = _frame(base)
    fields = "".join(f"<{POSTROOM_PREFIX}:{name}>{_text(value)}</{POSTROOM_PREFIX}:{name}>"
                     for name, value in values.items())
    description = (f'<rdf:Description xmlns:rdf="{XMP_NS_RDF}" xmlns:dc="{_DC}" '
                   f'xmlns:{POSTROOM_PREFIX}="{POSTROOM_NS}" rdf:about=""><dc:title><rdf:Alt>'
                   f'<rdf:li xml:lang="x-default">{_text(title)}</rdf:li></rdf:Alt></dc:title>{fields}'
                   "</rdf:Description>")
    # The packet wrapper lets XMP-aware tools update it in place; PDF/A allows (and LibreOffice writes) it.
    return (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
            + (before + description + after).encode("utf-8") + b'\n<?xpacket end="w"?>')


def apply_metadata(doc: pikepdf.Pdf, *, base: bytes, letter_id: str, template: str, template_version: str,
                   title: str, extra: dict[str, str] | None = None) -> None:
    """Write the letter's XMP packet (built from `base`, the source's packet) and Info entries into `doc`."""
    values = {"letterId": letter_id, "template": template, "templateVersion": template_version}
    if extra:
        values["extra"] = "\n".join(f"{k}={v}" for k, v in sorted(extra.items()))
    packet = letter_xmp(base, title=title, values=values)
    stream = pikepdf.Stream(doc, packet)
    stream.Type, stream.Subtype = pikepdf.Name.Metadata, pikepdf.Name.XML
    doc.Root.Metadata = doc.make_indirect(stream)
    doc.docinfo["/Title"] = title
    for name, key in _INFO_KEYS.items():
        doc.docinfo[key] = values[name]


def xmp_of(doc: pikepdf.Pdf) -> bytes:
    """The raw XMP packet of a PDF, or b"" when it has none."""
    return doc.Root.Metadata.read_bytes() if "/Metadata" in doc.Root else b""


def set_metadata(pdf: bytes, *, letter_id: str, template: str, template_version: str, title: str,
                 extra: dict[str, str] | None = None) -> bytes:
    """The PDF with the letter's id, template name and version and title in its XMP and Info dictionary."""
    try:
        doc = pikepdf.open(io.BytesIO(pdf))
    except pikepdf.PdfError as exc:
        raise ComposeError(f"not a readable PDF: {exc}") from exc
    with doc:
        apply_metadata(doc, base=xmp_of(doc), letter_id=letter_id, template=template,
                       template_version=template_version, title=title, extra=extra)
        out = io.BytesIO()
        doc.save(out, fix_metadata_version=False)
    return out.getvalue()


def read_metadata(pdf: bytes) -> dict[str, str]:
    """The postroom fields and dc:title of a PDF's XMP (for checks and tests)."""
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        meta = doc.open_metadata()
        found = {name: str(meta.get(f"{{{POSTROOM_NS}}}{name}", "")) for name in _FIELDS}
        found["title"] = str(meta.get("dc:title", ""))
        found["pdfa"] = meta.pdfa_status
    return found


def _describe_namespace(rdf: etree._Element) -> None:
    """Add the pdfaExtension schema describing the postroom namespace to the packet's rdf:RDF."""
    desc = etree.SubElement(rdf, f"{{{XMP_NS_RDF}}}Description",
                            nsmap={"pdfaExtension": XMP_NS_PDFA_EXTENSION, "pdfaSchema": XMP_NS_PDFA_SCHEMA,
                                   "pdfaProperty": XMP_NS_PDFA_PROPERTY})
    desc.set(f"{{{XMP_NS_RDF}}}about", "")
    bag = etree.SubElement(etree.SubElement(desc, f"{{{XMP_NS_PDFA_EXTENSION}}}schemas"), f"{{{XMP_NS_RDF}}}Bag")
    schema = etree.SubElement(bag, f"{{{XMP_NS_RDF}}}li")
    schema.set(f"{{{XMP_NS_RDF}}}parseType", "Resource")
    etree.SubElement(schema, f"{{{XMP_NS_PDFA_SCHEMA}}}schema").text = "Postroom letter"
    etree.SubElement(schema, f"{{{XMP_NS_PDFA_SCHEMA}}}namespaceURI").text = POSTROOM_NS
    etree.SubElement(schema, f"{{{XMP_NS_PDFA_SCHEMA}}}prefix").text = POSTROOM_PREFIX
    seq = etree.SubElement(etree.SubElement(schema, f"{{{XMP_NS_PDFA_SCHEMA}}}property"), f"{{{XMP_NS_RDF}}}Seq")
    for name, description in _FIELDS.items():
        prop = etree.SubElement(seq, f"{{{XMP_NS_RDF}}}li")
        prop.set(f"{{{XMP_NS_RDF}}}parseType", "Resource")
        etree.SubElement(prop, f"{{{XMP_NS_PDFA_PROPERTY}}}name").text = name
        etree.SubElement(prop, f"{{{XMP_NS_PDFA_PROPERTY}}}valueType").text = "Text"
        etree.SubElement(prop, f"{{{XMP_NS_PDFA_PROPERTY}}}category").text = "external"
        etree.SubElement(prop, f"{{{XMP_NS_PDFA_PROPERTY}}}description").text = description
