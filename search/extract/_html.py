"""HTML: the stdlib parser, fed chunk by chunk; script, style and template contents are skipped."""

from __future__ import annotations

import re
from collections.abc import Iterable
from html.parser import HTMLParser
from typing import BinaryIO

from search.extract._sink import Options, TextSink
from search.extract._text import decoded_chunks

_SKIP = frozenset({"script", "style", "template", "noembed", "object", "iframe"})
_BLOCK = frozenset({
    "address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl", "dt", "figcaption", "figure",
    "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "option", "p",
    "pre", "section", "table", "td", "th", "title", "tr", "ul",
})
_FLAT = str.maketrans("\r\n", "  ")  # in HTML a line break in the source is just a space
# The HTML standard's encoding prescan looks for a meta charset in the first 1024 bytes; this is that prescan,
# not a parser.
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([a-z0-9_.:-]{1,40})""", re.IGNORECASE)


class _Collector(HTMLParser):
    def __init__(self, sink: TextSink) -> None:
        super().__init__(convert_charrefs=True)
        self.sink = sink
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag in _BLOCK:
            self.sink.newline()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK:
            self.sink.newline()

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.sink.write(data.translate(_FLAT))


def html_to_sink(chunks: Iterable[str], sink: TextSink) -> None:
    """Feed HTML text into the sink (also used for the HTML parts of e-mails)."""
    parser = _Collector(sink)
    for chunk in chunks:
        parser.feed(chunk)
    parser.close()


def extract(fp: BinaryIO, sink: TextSink, options: Options) -> None:
    """An HTML file; the charset comes from a BOM, the caller, or a meta tag, else UTF-8."""
    head = fp.read(1024)
    fp.seek(0)
    charset = options.charset
    if not charset and (match := _META_CHARSET.search(head)):
        charset = match.group(1).decode("ascii")
    html_to_sink(decoded_chunks(fp, charset), sink)
