"""Creating a batch: the template's approved versions pinned, every input row stored as a pending batch row.

Decisions:
- A row names its customer by `customer_ref` (the external reference) or `customer_id`, and carries the
  letter data: in JSON, a `data` object (or, without one, every other key); in CSV, every other column, where
  `a.b` columns build nested objects and values are typed by the template's data schema (a column the schema
  says is a number, integer or boolean is converted; an empty cell is left out so `required` catches it).
- Rows are checked for shape here (a row that cannot be read, or names no customer, is stored as failed with
  the reason); customers, data and channels are checked when the row is run, against the pinned version.
- The whole input is stored before any letter is made, so a batch is resumable from the database alone.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from correspondence.service import default_variant, pin_versions
from output import events as names
from output.channels import channel_names
from output.models import BATCH_QUEUED, BATCH_RUNNING, ROW_FAILED, ROW_PENDING, LetterBatch, LetterBatchRow
from output.service._errors import BatchNotFoundError, ChannelChoiceError
from output.service.letters import LETTER_TYPE
from repository import audit, events
from repository.access import can_write, deny_write
from repository.config import get_settings
from repository.errors import InvalidInputError
from repository.models import User
from repository.record_file import RecordFile
from repository.service import get_type
from repository.types import new_id, utcnow

MAX_ROW_DATA = 64 * 1024
_INSERT_ROWS = 1000
CUSTOMER_KEYS = ("customer_ref", "customer_id")
BAD = "_problem"  # the key of a row that could not be read
_CATEGORY = re.compile(r"[a-z][a-z0-9_-]{0,49}")


def _typed(value: str, schema: dict[str, Any]) -> Any:
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    text = value.strip()
    if "integer" in kinds:
        try:
            return int(text)
        except ValueError:
            pass
    if "number" in kinds:
        try:
            number = float(text)
            return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
        except ValueError:
            pass
    if "boolean" in kinds and text.lower() in ("true", "false", "yes", "no", "1", "0"):
        return text.lower() in ("true", "yes", "1")
    return value


def _nest(columns: dict[str, str], schema: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for column, value in columns.items():
        if value == "":
            continue
        parts = column.split(".")
        target, fragment = data, schema
        for part in parts[:-1]:
            fragment = (fragment.get("properties") or {}).get(part, {}) if isinstance(fragment, dict) else {}
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                break
        else:
            leaf = (fragment.get("properties") or {}).get(parts[-1], {}) if isinstance(fragment, dict) else {}
            target[parts[-1]] = _typed(value, leaf if isinstance(leaf, dict) else {})
    return data


def row_from_json(obj: Any) -> dict[str, Any]:
    """A batch row from a JSON object: its customer keys and its data (the `data` object, or the other keys)."""
    if not isinstance(obj, dict):
        return {BAD: "the row must be a JSON object"}
    found = {key: obj.get(key) for key in CUSTOMER_KEYS}
    data = obj["data"] if "data" in obj else {k: v for k, v in obj.items() if k not in CUSTOMER_KEYS}
    if not isinstance(data, dict):
        return {**found, BAD: "data must be a JSON object"}
    return {**found, "data": data}


class BatchFile(RecordFile):
    """A CSV, JSON Lines or JSON array file of batch rows (see the module's decisions)."""

    key_column = "customer_ref"

    def __init__(self, stream: BinaryIO, *, schema: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.schema = schema or {}
        super().__init__(stream, **kwargs)

    def normalise_header(self, name: str) -> str:
        """Column names keep their case (they are the template's data keys); customer keys match any case."""
        name = name.strip()
        return name.lower() if name.lower() in CUSTOMER_KEYS else name

    def check_header(self, columns: list[str]) -> None:
        """A customer_ref or customer_id column is required."""
        if not set(CUSTOMER_KEYS) & set(columns):
            raise InvalidInputError("the CSV header has no customer_ref or customer_id column", field="file")
        if "" in columns:
            raise InvalidInputError("the CSV header has an empty column name", field="file")

    def csv_fields(self, header: list[str], cells: list[str]) -> dict[str, Any]:
        """The row's customer keys and its data, typed by the schema."""
        record = dict(zip(header, cells, strict=True))
        found = {key: (record.pop(key, "") or "").strip() or None for key in CUSTOMER_KEYS}
        return {**found, "data": _nest(record, self.schema)}

    def json_fields(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The row's customer keys and data from a JSON Lines record."""
        return row_from_json(obj)

    def bad_row(self, message: str, key: str | None = None) -> dict[str, Any]:
        """A row stored as failed with the reason."""
        return {"customer_ref": key, BAD: message}


def _stored(batch_id: str, line: int, record: dict[str, Any]) -> dict[str, Any]:
    ref, cid = record.get("customer_ref"), record.get("customer_id")
    problem = record.get(BAD)
    for key, value in (("customer_ref", ref), ("customer_id", cid)):
        if problem is None and value is not None and (not isinstance(value, str) or not value.strip()
                                                      or len(value) > 200):
            problem = f"{key} must be a non-empty string of at most 200 characters"
    if problem is None and not (ref or cid):
        problem = "the row names no customer: give customer_ref or customer_id"
    data = record.get("data") if problem is None else {}
    if problem is None:
        try:
            size = len(json.dumps(data, allow_nan=False))
        except (ValueError, TypeError, RecursionError):
            size, problem = 0, "the data must be plain JSON (finite numbers, not nested too deeply)"
        if size > MAX_ROW_DATA:
            problem = f"the row's data is larger than {MAX_ROW_DATA} bytes"
    return {"batch_id": batch_id, "row_no": line, "customer_ref": ref if isinstance(ref, str) else None,
            "customer_id": cid if isinstance(cid, str) and len(cid) <= 36 else None,
            "data": data if problem is None else {}, "state": ROW_FAILED if problem else ROW_PENDING,
            "error": problem}


def create_batch(session: Session, *, actor: User, template: str, rows: Iterable[tuple[int, dict[str, Any]]],
                 category: str | None = None, channel: str | None = None, source_name: str = "",
                 source_sha256: str = "", max_rows: int = 1_000_000, owner: str | None = None) -> LetterBatch:
    """Pin the template's approved versions and store the rows ((line, record) pairs) of a new batch;
    `owner` takes the runner's lease at once (the CLI runs the batch it creates)."""
    if not can_write(actor, get_type(session, name=LETTER_TYPE)):
        raise deny_write(actor, "letter", None, "create letters")
    channel = channel.strip().lower() if channel else None
    category = (category or "").strip().lower() or None
    if category is not None and not _CATEGORY.fullmatch(category):
        raise InvalidInputError("category must be 1-50 characters: a letter, then letters, digits, _ or -",
                                field="category")
    if channel and channel not in channel_names():
        raise ChannelChoiceError(f"unknown channel {channel!r}; use one of {', '.join(channel_names())}",
                                 field="channel")
    pinned = pin_versions(session, actor=actor, template=template)
    main = default_variant(session, pinned=pinned)
    now = utcnow()
    batch = LetterBatch(id=new_id(), template_id=main.id, template_name=main.name, template_version=pinned[main.id],
                        versions=pinned, category=category, channel=channel,
                        status=BATCH_RUNNING if owner else BATCH_QUEUED, source_name=source_name[:255],
                        source_sha256=source_sha256, rows_total=0, rows_done=0, rows_failed=0, pages=0,
                        runs=1 if owner else 0, lease_owner=owner, created_by=actor.id, created_at=now,
                        updated_at=now, started_at=now if owner else None,
                        lease_until=now + dt.timedelta(seconds=get_settings().batch_lease_seconds) if owner else None)
    session.add(batch)
    session.flush()
    total = failed = 0
    for part in _parts(rows):
        stored = [_stored(batch.id, line, record) for line, record in part]
        total += len(stored)
        if total > max_rows:
            raise InvalidInputError(f"a batch has at most {max_rows} rows", field="file")
        failed += sum(1 for row in stored if row["state"] == ROW_FAILED)
        session.execute(insert(LetterBatchRow), stored)
    if not total:
        raise InvalidInputError("the batch has no rows", field="file")
    batch.rows_total, batch.rows_failed = total, failed
    audit.record(session, actor=actor.username, action=names.BATCH_CREATED, object_type="letter_batch",
                 object_id=batch.id, details={"template": batch.template_name, "versions": pinned, "rows": total,
                                              "rejected": failed, "source": source_name, "sha256": source_sha256})
    events.emit(session, names.BATCH_CREATED, {"batch_id": batch.id, "rows": total})
    return batch


def _parts(rows: Iterable[tuple[int, dict[str, Any]]]) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    it = iter(rows)
    while part := list(itertools.islice(it, _INSERT_ROWS)):
        yield part


def get_batch(session: Session, *, actor: User, batch_id: str) -> LetterBatch:
    """The batch if the caller created it or may write letters (admins and authors by default); else 404."""
    batch = session.get(LetterBatch, batch_id)
    if batch is None or not (batch.created_by == actor.id or can_write(actor, get_type(session, name=LETTER_TYPE))):
        raise BatchNotFoundError(f"batch {batch_id} not found")
    return batch


def list_batches(session: Session, *, actor: User, limit: int = 20) -> list[LetterBatch]:
    """The newest batches the caller may see: all of them for letter writers, else their own."""
    query = select(LetterBatch).order_by(LetterBatch.created_at.desc(), LetterBatch.id).limit(limit)
    if not can_write(actor, get_type(session, name=LETTER_TYPE)):
        query = query.where(LetterBatch.created_by == actor.id)
    return list(session.execute(query).scalars())


def failed_rows(session: Session, *, batch_id: str, after: int = 0, limit: int = 100) -> list[LetterBatchRow]:
    """The batch's failed rows with their errors, in row order, from after row `after`."""
    return list(session.execute(select(LetterBatchRow).where(
        LetterBatchRow.batch_id == batch_id, LetterBatchRow.state == ROW_FAILED, LetterBatchRow.row_no > after)
        .order_by(LetterBatchRow.row_no).limit(limit)).scalars())
