"""XML: text content only, through defusedxml's SAX parser (entity declarations and external references refused)."""

from __future__ import annotations

from typing import BinaryIO
from xml.sax import SAXParseException
from xml.sax.handler import ContentHandler

import defusedxml.sax
from defusedxml import DefusedXmlException

from search.extract._sink import ExtractionError, Options, TextSink


class _Text(ContentHandler):
    def __init__(self, sink: TextSink) -> None:
        super().__init__()
        self.sink = sink

    def startElement(self, name: str, attrs: object) -> None:  # noqa: N802 (SAX API)
        self.sink.space()

    def endElement(self, name: str) -> None:  # noqa: N802 (SAX API)
        self.sink.space()

    def startElementNS(self, name: object, qname: object, attrs: object) -> None:  # noqa: N802 (SAX API)
        self.sink.space()

    def endElementNS(self, name: object, qname: object) -> None:  # noqa: N802 (SAX API)
        self.sink.space()

    def characters(self, content: str) -> None:
        self.sink.write(content)


def extract(fp: BinaryIO, sink: TextSink, options: Options) -> None:
    """An XML document's character data in document order."""
    try:
        defusedxml.sax.parse(fp, _Text(sink), forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ExtractionError(f"XML refused: {type(exc).__name__} (entities and external references are not read)") \
            from exc
    except SAXParseException as exc:
        raise ExtractionError(f"XML not well-formed: {exc.getMessage()} at line {exc.getLineNumber()}") from exc
