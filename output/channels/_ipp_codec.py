"""The small part of the IPP/1.1 wire format (RFC 8010) the print channel needs: requests out, responses in.

pyipp/aioipp (PyPI) are asyncio clients over aiohttp built for printer status; the channels are synchronous and
called from worker threads, so rather than an event loop per letter and aiohttp, this encodes the few attribute
groups Print-Job, Get-Jobs and Get-Job-Attributes use and decodes any response.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

# Delimiter (group) tags.
OPERATION = 0x01
JOB = 0x02
END = 0x03
# Value tags.
INTEGER, BOOLEAN, ENUM = 0x21, 0x22, 0x23
TEXT, NAME, KEYWORD, URI, CHARSET, LANGUAGE, MIME = 0x41, 0x42, 0x44, 0x45, 0x47, 0x48, 0x49
_STRING_TAGS = {0x30, 0x35, 0x36, *range(0x41, 0x4A)}  # octetString, with-language forms and the text family
# Operations.
PRINT_JOB, GET_JOB_ATTRIBUTES, GET_JOBS = 0x0002, 0x0009, 0x000A
# Job states.
PENDING, HELD, PROCESSING, STOPPED, CANCELED, ABORTED, COMPLETED = 3, 4, 5, 6, 7, 8, 9

Value = int | bool | str | bytes | None


class IppFormatError(ValueError):
    """The bytes are not a well-formed IPP message."""


def _value(tag: int, value: Value) -> bytes:
    if tag in (INTEGER, ENUM):
        return struct.pack(">i", int(value))  # type: ignore[arg-type]
    if tag == BOOLEAN:
        return b"\x01" if value else b"\x00"
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def encode_request(operation: int, request_id: int, groups: list[tuple[int, list[tuple[int, str, Value | list]]]],
                   data: bytes = b"") -> bytes:
    """An IPP/1.1 request: groups are (group tag, [(value tag, name, value or list of values)])."""
    out = bytearray(struct.pack(">BBHi", 1, 1, operation, request_id))
    for group_tag, attributes in groups:
        out.append(group_tag)
        for tag, name, values in attributes:
            for index, value in enumerate(values if isinstance(values, list) else [values]):
                raw_name = name.encode("ascii") if index == 0 else b""
                raw_value = _value(tag, value)
                out += struct.pack(">BH", tag, len(raw_name)) + raw_name + struct.pack(">H", len(raw_value)) + raw_value
    out.append(END)
    return bytes(out) + data


@dataclass
class Response:
    """A decoded IPP response: status code and the attribute groups in order."""

    status: int
    request_id: int
    groups: list[tuple[int, dict[str, list[Value]]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True for the successful-ok family (0x0000-0x00FF)."""
        return self.status < 0x0100

    def group(self, tag: int) -> dict[str, list[Value]]:
        """The first group with this tag (empty when absent)."""
        return next((attrs for group_tag, attrs in self.groups if group_tag == tag), {})

    def all_groups(self, tag: int) -> list[dict[str, list[Value]]]:
        """Every group with this tag (Get-Jobs answers one job group per job)."""
        return [attrs for group_tag, attrs in self.groups if group_tag == tag]

    def first(self, tag: int, name: str) -> Value:
        """The first value of an attribute in the first group with this tag, or None."""
        values = self.group(tag).get(name)
        return values[0] if values else None


def decode_response(raw: bytes) -> Response:
    """Parse an IPP response (any version); raises IppFormatError on malformed input."""
    if len(raw) < 9:
        raise IppFormatError("IPP message too short")
    _major, _minor, status, request_id = struct.unpack(">BBHi", raw[:8])
    response = Response(status=status, request_id=request_id)
    pos, current, last_name = 8, None, ""
    while pos < len(raw):
        tag = raw[pos]
        pos += 1
        if tag == END:
            return response
        if tag < 0x10:  # a new group
            current = {}
            response.groups.append((tag, current))
            continue
        if current is None or pos + 2 > len(raw):
            raise IppFormatError("attribute outside a group")
        (name_len,) = struct.unpack(">H", raw[pos:pos + 2])
        name = raw[pos + 2:pos + 2 + name_len].decode("utf-8", "replace")
        pos += 2 + name_len
        if pos + 2 > len(raw):
            raise IppFormatError("truncated attribute")
        (value_len,) = struct.unpack(">H", raw[pos:pos + 2])
        raw_value = raw[pos + 2:pos + 2 + value_len]
        if len(raw_value) != value_len:
            raise IppFormatError("truncated attribute value")
        pos += 2 + value_len
        value: Value
        if tag in (INTEGER, ENUM) and value_len == 4:
            value = struct.unpack(">i", raw_value)[0]
        elif tag == BOOLEAN and value_len == 1:
            value = raw_value != b"\x00"
        elif tag in _STRING_TAGS:
            value = raw_value.decode("utf-8", "replace")
        elif 0x10 <= tag < 0x20:  # out-of-band: unsupported, unknown, no-value
            value = None
        else:  # dateTime, resolution, ranges, collections: kept raw, the channel does not read them
            value = raw_value
        if name_len:
            last_name = name
            current.setdefault(name, []).append(value)
        elif last_name:  # an additional value of the previous attribute
            current[last_name].append(value)
    raise IppFormatError("IPP message has no end-of-attributes tag")
