"""E-mail (.eml): headers, text parts (HTML parts through the HTML extractor) and attachment names."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import BinaryIO

from search.extract._html import html_to_sink
from search.extract._sink import ExtractionError, Options, TextSink

HEADERS = ("From", "To", "Cc", "Subject", "Date")
_MAX_DEPTH = 20


def extract(fp: BinaryIO, sink: TextSink, options: Options) -> None:
    """The message's headers, then its body text, then 'Attachment: <name>' lines."""
    message = BytesParser(policy=policy.default).parse(fp)
    if not isinstance(message, EmailMessage) or not any(message.get(h) for h in ("From", "Subject", "Date")):
        raise ExtractionError("not an e-mail message (no From, Subject or Date header)")
    for name in HEADERS:
        try:
            value = message.get(name)
        except (ValueError, IndexError, TypeError):  # a header the parser cannot model
            value = message.get_all(name, failobj=[None])[0]
        if value:
            sink.write(f"{name}: {value}")
            sink.newline()
    attachments: list[str] = []
    _part(message, sink, attachments, 0)
    for name in attachments:
        sink.write(f"Attachment: {name}")
        sink.newline()


def _part(part: EmailMessage, sink: TextSink, attachments: list[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        return
    if part.is_attachment() or (depth and part.get_content_maintype() not in ("text", "multipart")):
        attachments.append(part.get_filename() or _attached_message_name(part) or part.get_content_type())
        return
    if part.is_multipart():
        children = list(part.iter_parts())
        if part.get_content_subtype() == "alternative":
            children = _preferred(children)
        for child in children:
            _part(child, sink, attachments, depth + 1)
        return
    subtype = part.get_content_subtype()
    if part.get_content_maintype() != "text" or subtype not in ("plain", "html"):
        return
    text = _content(part)
    if subtype == "html":
        html_to_sink([text], sink)
    else:
        sink.write(text)
    sink.newline()


def _preferred(children: list[EmailMessage]) -> list[EmailMessage]:
    # Of the alternatives, read one: HTML (the plain part is often a stub), else plain text, else all of them.
    for wanted in ("text/html", "multipart/related", "text/plain"):
        for child in children:
            if child.get_content_type() == wanted and not child.is_attachment():
                return [child]
    return children


def _content(part: EmailMessage) -> str:
    try:
        return part.get_content()
    except (LookupError, ValueError, AssertionError):  # unknown charset or broken transfer encoding
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)


def _attached_message_name(part: EmailMessage) -> str | None:
    if part.get_content_type() != "message/rfc822":
        return None
    inner = part.get_payload()
    inner = inner[0] if isinstance(inner, list) and inner else inner
    subject = inner.get("Subject") if hasattr(inner, "get") else None
    return f"{subject}.eml" if subject else None
