"""Postroom's document metadata in a PDF: XMP (dc:title plus a postroom namespace) and the Info dictionary.

pikepdf's `open_metadata` keeps XMP and Info in step and leaves the pdfaid part/conformance LibreOffice wrote
untouched. PDF/A requires every custom XMP namespace to be described by a pdfaExtension schema in the same
packet, so that description is added when the file claims PDF/A; without it the letter would stop validating.
"""

from __future__ import annotations

import io

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

pikepdf.models.PdfMetadata.register_xml_namespace(POSTROOM_NS, POSTROOM_PREFIX)


def set_metadata(pdf: bytes, *, letter_id: str, template: str, template_version: str, title: str,
                 extra: dict[str, str] | None = None) -> bytes:
    """The PDF with the letter's id, template name and version and title in its XMP and Info dictionary."""
    try:
        doc = pikepdf.open(io.BytesIO(pdf))
    except pikepdf.PdfError as exc:
        raise ComposeError(f"not a readable PDF: {exc}") from exc
    values = {"letterId": letter_id, "template": template, "templateVersion": template_version}
    if extra:
        values["extra"] = "\n".join(f"{k}={v}" for k, v in sorted(extra.items()))
    with doc:
        with doc.open_metadata(set_pikepdf_as_editor=False) as meta:
            meta["dc:title"] = title
            for name, value in values.items():
                meta[f"{{{POSTROOM_NS}}}{name}"] = value
            is_pdfa = bool(meta.pdfa_status)
        for name, key in _INFO_KEYS.items():
            doc.docinfo[key] = values[name]
        if is_pdfa:
            _describe_namespace(doc)
        out = io.BytesIO()
        doc.save(out)
    return out.getvalue()


def read_metadata(pdf: bytes) -> dict[str, str]:
    """The postroom fields and dc:title of a PDF's XMP (for checks and tests)."""
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        meta = doc.open_metadata()
        found = {name: str(meta.get(f"{{{POSTROOM_NS}}}{name}", "")) for name in _FIELDS}
        found["title"] = str(meta.get("dc:title", ""))
        found["pdfa"] = meta.pdfa_status
    return found


def _describe_namespace(doc: pikepdf.Pdf) -> None:
    """Add the pdfaExtension schema describing the postroom namespace to the XMP packet (once)."""
    stream = doc.Root.Metadata
    raw = stream.read_bytes()
    if POSTROOM_NS.encode() in raw and XMP_NS_PDFA_SCHEMA.encode() in raw and b"letterId</pdfaProperty" in raw:
        return
    parser = etree.XMLParser(remove_blank_text=False, resolve_entities=False, no_network=True)
    tree = etree.ElementTree(etree.fromstring(raw, parser))
    rdf = tree.getroot().find(f".//{{{XMP_NS_RDF}}}RDF")
    if rdf is None:
        raise ComposeError("the PDF's XMP has no rdf:RDF element")
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
    body = etree.tostring(tree.getroot(), encoding="utf-8")
    # The packet wrapper lets XMP-aware tools update it in place; PDF/A allows (and LibreOffice writes) it.
    stream.write(b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n' + body
                 + b'\n<?xpacket end="w"?>')
