"""Bulk customer import from CSV (with a header row) or JSON Lines, streamed: `CustomerFile` reads the rows one
at a time and `chunks` hands them out in lists, so a file of any length works in bounded memory. Each chunk goes
through `service.import_customers` in the caller's session; the caller (api.jobs.import_customer_file, used by the
API and the CLI) commits chunk by chunk, so a crash loses at most one chunk (running the file again is safe: the
import is an upsert on external_ref).

CSV columns are the customer fields by name, with `address_line1`..`address_line4` for the address lines,
`pref.<category>` for channel preferences and `segment.<key>` for segment attributes. A JSON Lines row is an
object with the fields of the API (`address` as an object, or its parts flat).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from repository import record_file
from repository.errors import InvalidInputError
from repository.record_file import RecordFile
from repository.service.customers import KEEP_REJECTIONS, MalformedRow

CHUNK = 500
PLAIN_COLUMNS = ("external_ref", "name", "salutation", "title", "city", "region", "postcode", "country", "email",
                 "mobile", "locale", "paperless")
ADDRESS_PARTS = {"lines": "address_lines", "city": "city", "region": "region", "postcode": "postcode",
                 "country": "country"}
# Fields a customer as the API shows it carries but an import does not set; ignored so exports re-import.
READ_ONLY = {"id", "version", "created_at", "updated_at", "consents", "address_undeliverable",
             "undeliverable_reason", "undeliverable_at"}
_ADDRESS_LINE = re.compile(r"^address_line([1-4])$")


def _bad_row(message: str, field: str = "", external_ref: str | None = None) -> MalformedRow:
    return MalformedRow([{"field": field, "message": message}], external_ref)


class CustomerFile(RecordFile):
    """A CSV or JSON Lines file of customers (the columns above), read row by row."""

    key_column = "external_ref"

    def check_header(self, columns: list[str]) -> None:
        """Only customer columns, and an external_ref among them."""
        unknown = [c for c in columns if not (c in PLAIN_COLUMNS or _ADDRESS_LINE.match(c)
                                              or re.match(r"^(pref|segment)\.\S+$", c))]
        if unknown:
            raise InvalidInputError(
                f"unknown CSV column(s) {', '.join(repr(c) for c in unknown)}; columns are "
                f"{', '.join(PLAIN_COLUMNS)}, address_line1..address_line4, pref.<category>, segment.<key>",
                field="file")
        if "external_ref" not in columns:
            raise InvalidInputError("the CSV header has no external_ref column", field="file")

    def csv_fields(self, header: list[str], cells: list[str]) -> dict[str, Any]:
        """A customer's fields from a CSV record."""
        return _csv_fields(header, cells)

    def json_fields(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A customer's fields from a JSON Lines record."""
        return _json_fields(obj)

    def bad_row(self, message: str, key: str | None = None) -> dict[str, Any]:
        """A MalformedRow the import reports as rejected."""
        return _bad_row(message, external_ref=key)


def _csv_fields(header: list[str], cells: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    lines: dict[int, str] = {}
    for column, cell in zip(header, cells, strict=True):
        value = cell.strip()
        if match := _ADDRESS_LINE.match(column):
            lines[int(match.group(1))] = value
        elif column.startswith("pref."):
            prefs = fields.setdefault("channel_preferences", {})
            if value:
                prefs[column[5:]] = value
        elif column.startswith("segment."):
            segment = fields.setdefault("segment", {})
            if value:
                segment[column[8:]] = value
        else:
            fields[column] = value or None
    if lines:
        fields["address_lines"] = [lines[i] for i in sorted(lines) if lines[i]]
    return fields


def _json_fields(obj: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in obj.items() if k not in READ_ONLY and k != "address"}
    if "address" not in obj:
        return fields
    address = obj["address"]
    ref = obj.get("external_ref") if isinstance(obj.get("external_ref"), str) else None
    if address is None:
        return {**fields, **dict.fromkeys(ADDRESS_PARTS.values())}
    if not isinstance(address, dict):
        return _bad_row("must be an object with lines, city, region, postcode, country", "address", ref)
    unknown = sorted(set(address) - set(ADDRESS_PARTS))
    if unknown:
        return _bad_row(f"unknown address part(s) {', '.join(unknown)}; parts are {', '.join(ADDRESS_PARTS)}",
                        "address", ref)
    return {**fields, **{ADDRESS_PARTS[k]: address.get(k) for k in ADDRESS_PARTS}}


def chunks(source: CustomerFile, size: int = CHUNK) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    """The file's rows in lists of at most `size` (1..KEEP_REJECTIONS), for a caller that commits each one."""
    return record_file.chunks(source, min(max(size, 1), KEEP_REJECTIONS))


__all__ = ["CHUNK", "CustomerFile", "chunks"]
