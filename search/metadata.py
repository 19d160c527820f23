"""Metadata filters (`meta.<key>=<value>`) in SQL, one comparison shared by the SQL backends and holds from a
search, so every backend matches the same documents (Elasticsearch's side: `_elastic_query.source`).

The value compared is the text of a TOP-LEVEL SCALAR value: strings as they are, numbers as written in the JSON,
booleans as `true`/`false` (SQLite's JSON_EXTRACT alone gives 1/0). Objects, lists and null match nothing, so
`meta.address.city=Leeds` is the top-level key "address.city", never a nested one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, String, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from repository.errors import InvalidInputError

_PATH_BREAKING = ('"', "\\")  # would end or escape the key inside SQLite's JSON path


class _MetaText(FunctionElement[str]):
    """The text of one top-level scalar value of a JSON column (NULL for objects, lists, null and no value)."""

    type = String()
    name = "meta_text"
    inherit_cache = True


# Each occurrence of a parameter is compiled where it appears, so positional parameters (SQLite) line up.
@compiles(_MetaText)  # the default (str() of a statement) as SQLite
@compiles(_MetaText, "sqlite")
def _sqlite(element: _MetaText, compiler: Any, **kw: Any) -> str:
    column, key = element.clauses

    def value(function: str) -> str:
        return f"{function}({compiler.process(column, **kw)}, '$.\"' || {compiler.process(key, **kw)} || '\"')"

    return (f"CASE {value('json_type')} WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'object' THEN NULL "
            f"WHEN 'array' THEN NULL ELSE CAST({value('json_extract')} AS VARCHAR) END")


@compiles(_MetaText, "postgresql")
def _postgresql(element: _MetaText, compiler: Any, **kw: Any) -> str:
    column, key = element.clauses

    def value(operator: str) -> str:
        return f"({compiler.process(column, **kw)} {operator} CAST({compiler.process(key, **kw)} AS TEXT))"

    return f"CASE jsonb_typeof({value('->')}) WHEN 'object' THEN NULL WHEN 'array' THEN NULL ELSE {value('->>')} END"


def meta_equals(column: Any, key: str, value: str) -> ColumnElement[bool]:
    """True where the JSON column's top-level `key` holds a scalar whose text is `value` (see the module)."""
    return _MetaText(column, literal(key, String())) == value


def check_key(key: str) -> None:
    """InvalidInputError when a filter name holds a character some backend cannot compare (a quote, a backslash)."""
    if any(c in key for c in _PATH_BREAKING):
        raise InvalidInputError(f"metadata filter names cannot contain a double quote or a backslash ({key[:40]!r})",
                                field="meta")
