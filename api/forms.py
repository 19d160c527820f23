"""Small form-field parsers shared by the multipart endpoints."""

from __future__ import annotations

import json
from typing import Any

from repository.errors import InvalidInputError


def json_object_field(raw: str | None, name: str) -> dict[str, Any] | None:
    """A form field holding a JSON object; None when absent or empty, InvalidInputError naming the field when it
    is not a JSON object."""
    if raw is None or raw.strip() == "":
        return None
    value = _json(raw, name)
    if not isinstance(value, dict):
        raise InvalidInputError(f"{name} must be a JSON object", field=name)
    return value


def json_array_field(raw: str, name: str) -> list[Any]:
    """A form field holding a JSON array; InvalidInputError naming the field otherwise."""
    value = _json(raw, name)
    if not isinstance(value, list):
        raise InvalidInputError(f"{name} must be a JSON array", field=name)
    return value


def _json(raw: str, name: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{name} is not valid JSON: {exc.msg} at position {exc.pos}", field=name) from exc
    except RecursionError as exc:
        raise InvalidInputError(f"{name} is nested too deeply", field=name) from exc
    except ValueError as exc:  # e.g. an integer with more digits than Python will convert
        raise InvalidInputError(f"{name} is not acceptable JSON: {exc}", field=name) from exc


def flag_field(raw: str | None, name: str) -> bool | None:
    """A true/false form field; None when absent or empty."""
    value = (raw or "").strip().lower()
    if value == "":
        return None
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise InvalidInputError(f"{name} must be true or false", field=name)
