"""multipart/form-data with many small files (a batch upload): each `file` part staged in memory, within limits
on the number of files, each file's size and the whole body; small text fields collected with bounds."""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from api.uploads import MAX_FIELD_BYTES, MAX_FIELDS
from repository.content import MEMORY_SPOOL, ContentStager, StagedContent
from repository.errors import ContentTooLargeError, InvalidInputError

MAX_FILES = 100
MAX_FILE_BYTES = MEMORY_SPOOL  # a file stays in memory, never in a plaintext spool: larger files upload one by one
MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass
class BatchForm:
    """The text fields of a batch upload and its files, staged, in the order they came."""

    fields: dict[str, str] = field(default_factory=dict)
    files: list[StagedContent] = field(default_factory=list)

    def release(self) -> None:
        """Drop the staged files."""
        for staged in self.files:
            staged.release()


class _Collector:
    def __init__(self, tmp_dir) -> None:  # noqa: ANN001
        self.tmp_dir = tmp_dir
        self.form = BatchForm()
        self._headers: dict[bytes, bytes] = {}
        self._hname, self._hvalue, self._value = bytearray(), bytearray(), bytearray()
        self._name: str | None = None
        self._stager: ContentStager | None = None
        self._filename: str | None = None

    def on_part_begin(self) -> None:
        self._headers, self._name, self._stager, self._value = {}, None, None, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._hname).lower()] = bytes(self._hvalue)
        self._hname, self._hvalue = bytearray(), bytearray()

    def on_headers_finished(self) -> None:
        _disp, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        if self._name == "file":
            if len(self.form.files) >= MAX_FILES:
                raise InvalidInputError(f"a batch holds at most {MAX_FILES} files", field="file")
            self._stager = ContentStager(max_bytes=MAX_FILE_BYTES, tmp_dir=self.tmp_dir)
            raw = params.get(b"filename")
            self._filename = raw.decode("utf-8", "replace") if raw is not None else None
        elif len(self.form.fields) >= MAX_FIELDS:
            raise InvalidInputError(f"too many form fields (at most {MAX_FIELDS})")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._stager is not None:
            try:
                self._stager.write(data[start:end])
            except ContentTooLargeError:
                raise ContentTooLargeError(
                    f"file {len(self.form.files) + 1} of the batch is larger than {MAX_FILE_BYTES} bytes; "
                    "upload larger files one at a time", limit=MAX_FILE_BYTES) from None
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise InvalidInputError(f"form field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if self._stager is not None:
            self.form.files.append(self._stager.finish(self._filename))
            self._stager = None
        elif self._name:
            try:
                text = self._value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInputError(f"form field {self._name!r} is not UTF-8 text") from exc
            if "\x00" in text:
                raise InvalidInputError(f"form field {self._name!r} contains a NUL character", field=self._name)
            self.form.fields[self._name] = text


async def read_batch_form(request: Request, *, tmp_dir) -> BatchForm:  # noqa: ANN001
    """Parse a batch upload; 4xx errors for a malformed body or one past the limits (nothing is kept then)."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise InvalidInputError("send the request as multipart/form-data with a boundary")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ContentTooLargeError(f"a batch upload is at most {MAX_BODY_BYTES} bytes", limit=MAX_BODY_BYTES)
    collector = _Collector(tmp_dir)
    callbacks = {name: getattr(collector, name) for name in (
        "on_part_begin", "on_header_field", "on_header_value", "on_header_end", "on_headers_finished",
        "on_part_data", "on_part_end")}
    parser = MultipartParser(params[b"boundary"], callbacks)
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > MAX_BODY_BYTES:
                raise ContentTooLargeError(f"a batch upload is at most {MAX_BODY_BYTES} bytes", limit=MAX_BODY_BYTES)
            parser.write(chunk)
        parser.finalize()
    except BaseException as exc:
        collector.form.release()
        if isinstance(exc, (ClientDisconnect, InvalidInputError, ContentTooLargeError)) or not isinstance(
            exc, Exception
        ):
            raise
        raise InvalidInputError(f"the multipart body is malformed: {exc}") from exc
    if not collector.form.files:
        raise InvalidInputError("the batch has no 'file' parts", field="file")
    return collector.form
