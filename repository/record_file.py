"""Reading CSV (with a header row), JSON Lines and JSON array files record by record, in bounded memory:
`RecordFile` reads one row at a time and `chunks` hands them out in lists, so a file of any length works.
Customer imports (repository.customer_import) and letter batches (output) build on it.

A JSON array is read with ijson, one element at a time; its rows are numbered by position (1 = the first
element). Unlike a CSV or JSON Lines file, whose lines stand alone, an array that breaks off or stops being JSON
part-way has no trustworthy rows after the break, so the whole file is checked first and refused (422, with the
byte offset) rather than half-used."""

from __future__ import annotations

import codecs
import csv
import itertools
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

import ijson

from repository.errors import InvalidInputError, UnsupportedMediaTypeError

MAX_LINE = 1024 * 1024
HEAD = 64 * 1024
MAX_ELEMENT_EVENTS = 100_000  # values (and starts and ends of objects and lists) in one JSON array element
_ELEMENT_BYTES = MAX_LINE + 64 * 1024  # the parser reads ahead in 64 KiB buffers: positions are that exact
_MEDIA_TYPES = {"text/csv": "csv", "application/csv": "csv", "application/x-ndjson": "jsonl",
                "application/jsonl": "jsonl", "application/x-jsonlines": "jsonl", "application/json-lines": "jsonl",
                "application/json": "jsonl"}
FORMATS = ("csv", "jsonl", "json")


def detect_format(head: bytes, *, filename: str | None = None, media_type: str | None = None) -> str:
    """"csv", "jsonl" or "json" (an array of objects): from the file name, else the media type, else the first
    character; JSON that starts with "[" is an array whatever it is called."""
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    name = (filename or "").lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "json" if first == b"[" else "jsonl"
    declared = (media_type or "").split(";")[0].strip().lower()
    if declared in _MEDIA_TYPES:
        return "json" if _MEDIA_TYPES[declared] == "jsonl" and first == b"[" else _MEDIA_TYPES[declared]
    return {b"{": "jsonl", b"[": "json"}.get(first, "csv")


def check_text(head: bytes) -> None:
    """UnsupportedMediaTypeError unless the first bytes look like UTF-8 text (no NUL, valid UTF-8)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnsupportedMediaTypeError("the file is UTF-16; save it as UTF-8 CSV or JSON Lines")
    if b"\x00" in head:
        raise UnsupportedMediaTypeError("the file is not CSV or JSON Lines text: it contains binary data")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise UnsupportedMediaTypeError(f"the file is not UTF-8 text (bad byte at offset {exc.start}); save it "
                                        "as UTF-8 CSV or JSON Lines") from exc


class RecordFile:
    """A CSV (with a header row) or JSON Lines file read record by record; the constructor checks that it is text
    and reads the CSV header (InvalidInputError / UnsupportedMediaTypeError before any row is used). Subclasses
    say which columns are allowed (`check_header`), how a record becomes fields (`csv_fields`, `json_fields`)
    and how an unreadable row is reported (`bad_row`)."""

    key_column = ""  # the column naming a row in error reports

    def __init__(self, stream: BinaryIO, *, fmt: str | None = None, filename: str | None = None,
                 media_type: str | None = None) -> None:
        self.stream = stream
        self.bytes_read = 0
        head = stream.read(HEAD)
        stream.seek(0)
        if not head.strip(b"\xef\xbb\xbf \t\r\n"):
            raise InvalidInputError("the file is empty", field="file")
        check_text(head)
        if fmt is not None and fmt not in FORMATS:
            raise InvalidInputError(f"unknown format {fmt!r}; use {', '.join(FORMATS)}", field="format")
        self.format = fmt or detect_format(head, filename=filename, media_type=media_type)
        if self.format == "json":
            self._check_array()
        self._lines = self._physical_lines()
        self._bad: dict[int, str] = {}
        self._line = 0
        if self.format == "csv":
            self._csv = csv.reader(self._text_lines())
            self._end = 0
            self._header = self._read_header()

    def _physical_lines(self) -> Iterator[tuple[int, bytes | None]]:
        """(line number, bytes), with None for a line longer than MAX_LINE (skipped without keeping it)."""
        for lineno in itertools.count(1):
            raw = self.stream.readline(MAX_LINE + 1)
            if not raw:
                return
            self.bytes_read += len(raw)
            if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                while (more := self.stream.readline(MAX_LINE)) and not more.endswith(b"\n"):
                    self.bytes_read += len(more)
                self.bytes_read += len(more)
                yield lineno, None
                continue
            yield lineno, raw[3:] if lineno == 1 and raw.startswith(codecs.BOM_UTF8) else raw

    def _decode(self, lineno: int, raw: bytes | None) -> str | None:
        if raw is None:
            self._bad[lineno] = f"the line is longer than {MAX_LINE} bytes"
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self._bad[lineno] = "the line is not UTF-8 text"
            return None

    def _text_lines(self) -> Iterator[str]:
        for lineno, raw in self._lines:
            self._line = lineno
            text = self._decode(lineno, raw)
            # A placeholder keeps the CSV structure; the record it ends up in is rejected.
            yield text if text is not None else "\n"

    def _next_record(self) -> tuple[int, list[str] | None, str | None] | None:
        """(first line, cells or None, problem) for the next non-blank CSV record; None at the end."""
        while True:
            start = self._end + 1
            try:
                cells = next(self._csv)
                problem = None
            except StopIteration:
                return None
            except csv.Error as exc:
                cells, problem = None, f"the line is not valid CSV: {exc}"
            self._end = self._csv.line_num
            bad = [line for line in self._bad if line <= self._end]
            if bad:
                problem = problem or self._bad[bad[0]]
                for line in bad:
                    del self._bad[line]
            if cells == [] and problem is None:
                continue
            return start, cells, problem

    def _read_header(self) -> list[str]:
        record = self._next_record()
        if record is None or record[1] is None:
            raise InvalidInputError(f"the CSV header row cannot be read: {record[2] if record else 'no rows'}",
                                    field="file")
        columns = [self.normalise_header(c) for c in record[1]]
        twice = sorted({c for c in columns if columns.count(c) > 1})
        if twice:
            raise InvalidInputError(f"CSV column(s) named twice: {', '.join(twice)}", field="file")
        self.check_header(columns)
        return columns

    def normalise_header(self, name: str) -> str:
        """A CSV column name as the fields use it (stripped and lower-cased unless a subclass says otherwise)."""
        return name.strip().lower()

    def check_header(self, columns: list[str]) -> None:
        """InvalidInputError when the CSV header is not acceptable."""

    def csv_fields(self, header: list[str], cells: list[str]) -> dict[str, Any]:
        """The fields of one CSV record."""
        return dict(zip(header, (c.strip() for c in cells), strict=True))

    def json_fields(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The fields of one JSON Lines record."""
        return obj

    def bad_row(self, message: str, key: str | None = None) -> dict[str, Any]:
        """What `rows` yields for a row that cannot be read."""
        raise NotImplementedError

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(line number, or position in a JSON array, and fields) for every row; a row that cannot be read is what
        `bad_row` makes of it."""
        if self.format == "json":
            return self._array_rows()
        return self._csv_rows() if self.format == "csv" else self._jsonl_rows()

    def _check_array(self) -> None:
        """InvalidInputError unless the whole file is one well-formed JSON array whose elements are each at most
        MAX_LINE bytes and MAX_ELEMENT_EVENTS values (read through, not kept: ijson builds each element whole when
        the rows are read, so the check bounds that memory as MAX_LINE bounds a JSON Lines row)."""
        depth, seen_array, position, started, values = 0, False, 0, 0, 0
        self.stream.seek(self._body_start())
        reader = _Counted(self.stream)
        try:
            for _prefix, event, _value in ijson.parse(reader, use_float=True):
                if depth == 0 and event not in ("start_array", "end_array"):
                    raise InvalidInputError("the file is JSON but not an array of objects", field="file")
                seen_array = seen_array or event == "start_array"
                if depth == 1 and event != "end_array":  # an element starts
                    position, started, values = position + 1, reader.read_so_far, 0
                values += 1
                if depth >= 1 and (values > MAX_ELEMENT_EVENTS or reader.read_so_far - started > _ELEMENT_BYTES):
                    raise InvalidInputError(f"element {position} of the array is larger than {MAX_LINE // 1024} KiB "
                                            f"or {MAX_ELEMENT_EVENTS:,} values; nothing was read from the file",
                                            field="file")
                depth += event in ("start_array", "start_map")
                depth -= event in ("end_array", "end_map")
        except ijson.JSONError as exc:
            where = f" near byte {reader.read_so_far:,}"
            reason = (str(exc).splitlines() or [type(exc).__name__])[0].strip()
            raise InvalidInputError(f"the file is not a well-formed JSON array{where}: {reason}; nothing was read "
                                    "from it", field="file") from None
        finally:
            self.stream.seek(0)
        if not seen_array:
            raise InvalidInputError("the file is JSON but not an array of objects", field="file")

    def _body_start(self) -> int:
        """Where the JSON starts: after a UTF-8 byte order mark, which the JSON parser does not take."""
        self.stream.seek(0)
        return len(codecs.BOM_UTF8) if self.stream.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8 else 0

    def _array_rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        self.stream.seek(self._body_start())
        for position, obj in enumerate(ijson.items(_Counted(self.stream, self), "item", use_float=True), 1):
            if not isinstance(obj, dict):
                yield position, self.bad_row("the element must be a JSON object")
                continue
            yield position, self.json_fields(obj)

    def _csv_rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        header = self._header
        ref_at = header.index(self.key_column) if self.key_column in header else -1
        while (record := self._next_record()) is not None:
            line, cells, problem = record
            ref = cells[ref_at].strip() or None if cells and ref_at >= 0 and len(cells) > ref_at else None
            if problem is not None:
                yield line, self.bad_row(problem, ref)
            elif len(cells) != len(header):
                yield line, self.bad_row(f"the row has {len(cells)} fields; the header has {len(header)}", ref)
            else:
                yield line, self.csv_fields(header, cells)

    def _jsonl_rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for lineno, raw in self._lines:
            text = self._decode(lineno, raw)
            if text is None:
                yield lineno, self.bad_row(self._bad.pop(lineno))
                continue
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield lineno, self.bad_row(f"the line is not valid JSON: {exc.msg} at column {exc.colno}")
                continue
            except (ValueError, RecursionError) as exc:
                yield lineno, self.bad_row(f"the line is not acceptable JSON: {type(exc).__name__}")
                continue
            if not isinstance(obj, dict):
                yield lineno, self.bad_row("the line must be a JSON object")
                continue
            yield lineno, self.json_fields(obj)


class _Counted:
    """The stream as ijson reads it, counting what it has read (positions without a system call per value); the
    rows' reader adds it to the file's bytes_read too (for progress)."""

    def __init__(self, stream: BinaryIO, owner: RecordFile | None = None) -> None:
        self.stream, self.owner, self.read_so_far = stream, owner, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.read_so_far += len(data)
        if self.owner is not None:
            self.owner.bytes_read += len(data)
        return data


def chunks(source: RecordFile, size: int) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    """The file's rows in lists of at most `size` (at least 1), for a caller that commits each one."""
    rows = source.rows()
    while chunk := list(itertools.islice(rows, max(size, 1))):
        yield chunk
