"""The metadata query that selects documents for a legal hold: validated, then compiled to SQL over the documents
table (never the search index), the same on SQLite JSON and PostgreSQL jsonb."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from sqlalchemy import String, and_, cast, func, literal, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from repository.errors import InvalidInputError
from repository.models import Customer, Document, DocumentType

KEYS = ("document_type", "customer_id", "created_from", "created_to", "meta", "title_contains")
MAX_META_KEYS = 20
MAX_TEXT = 500
_SQLITE_TYPES = {str: ("text",), int: ("integer", "real"), float: ("integer", "real")}


def _bad(key: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"query.{key}: {message}", field=f"query.{key}")


def _text(query: dict[str, Any], key: str) -> str:
    value = query[key]
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise _bad(key, f"must be a non-empty string of at most {MAX_TEXT} characters")
    return value


def _instant(key: str, value: Any) -> tuple[dt.datetime, bool]:
    """The UTC instant a date or date-time names, and whether it was a date alone."""
    if not isinstance(value, str):
        raise _bad(key, "must be an ISO 8601 date (2024-01-31) or date-time (2024-01-31T12:00:00Z)")
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC), True
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _bad(key, f"{value!r} is not an ISO 8601 date (2024-01-31) or date-time (2024-01-31T12:00:00Z)") \
            from None
    # A time without an offset is taken as UTC, the zone every stored time is in.
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).astimezone(dt.UTC), False


def _meta(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise _bad("meta", 'must be a non-empty object of metadata keys and values, like {"policy": "P-1"}')
    if len(value) > MAX_META_KEYS:
        raise _bad("meta", f"at most {MAX_META_KEYS} keys")
    for name, wanted in value.items():
        if not name or len(name) > 200 or any(c in name for c in '"\\') or not name.isprintable():
            raise _bad("meta", f"{name!r} is not a usable metadata key (1-200 printable characters, no quotes or "
                       "backslashes)")
        if isinstance(wanted, float) and not math.isfinite(wanted):
            raise _bad(f"meta.{name}", "numbers must be finite")
        if wanted is not None and not isinstance(wanted, (str, int, float, bool)):
            raise _bad(f"meta.{name}", "only strings, numbers, booleans and null can be matched")
    return value


def _meta_equals(dialect: str, name: str, wanted: Any) -> ColumnElement[bool]:
    """metadata[name] == wanted, as JSON values (a string "1" is not the number 1; a missing key never matches)."""
    if dialect == "postgresql":
        return Document.meta[name] == cast(literal(json.dumps(wanted), String), JSONB)
    path = f'$."{name}"'
    kind = func.json_type(Document.meta, path)
    if wanted is None:
        return kind == "null"
    if isinstance(wanted, bool):
        return kind == ("true" if wanted else "false")
    return and_(kind.in_(_SQLITE_TYPES[type(wanted)]), func.json_extract(Document.meta, path) == wanted)


def conditions(session: Session, query: Any) -> list[ColumnElement[bool]]:
    """Validate a hold query and return its SQL conditions on Document; InvalidInputError names the bad key."""
    if not isinstance(query, dict) or not query:
        raise InvalidInputError(f"query must be a non-empty object with some of the keys {', '.join(KEYS)}",
                                field="query")
    unknown = sorted(str(k) for k in query if k not in KEYS)
    if unknown:
        raise InvalidInputError(f"query: unknown key(s) {', '.join(unknown)}; the keys are {', '.join(KEYS)}",
                                field=f"query.{unknown[0]}")
    where: list[ColumnElement[bool]] = []
    if "document_type" in query:
        name = _text(query, "document_type")
        type_id = session.execute(select(DocumentType.id).where(DocumentType.name == name)).scalar_one_or_none()
        if type_id is None:
            raise _bad("document_type", f"there is no document type {name!r}")
        where.append(Document.document_type_id == type_id)
    if "customer_id" in query:
        customer_id = _text(query, "customer_id")
        if session.get(Customer, customer_id) is None:
            raise _bad("customer_id", f"there is no customer {customer_id}")
        where.append(Document.customer_id == customer_id)
    start = _instant("created_from", query["created_from"])[0] if "created_from" in query else None
    if start is not None:
        where.append(Document.created_at >= start)
    if "created_to" in query:
        end, whole_day = _instant("created_to", query["created_to"])
        if start is not None and end < start:
            raise _bad("created_to", "is before created_from")
        # A date alone includes that whole day.
        where.append(Document.created_at < end + dt.timedelta(days=1) if whole_day else Document.created_at <= end)
    if "meta" in query:
        dialect = session.get_bind().dialect.name
        where += [_meta_equals(dialect, name, wanted) for name, wanted in _meta(query["meta"]).items()]
    if "title_contains" in query:
        fragment = _text(query, "title_contains")
        escaped = fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(Document.title.ilike(f"%{escaped}%", escape="\\"))
    return where
