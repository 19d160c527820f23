"""Streaming multipart/form-data: the file part goes straight into a ContentStager, with the size limit
enforced as bytes arrive; small text fields are collected with bounds."""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from repository.content import ContentStager, Sealer, StagedContent
from repository.errors import ContentTooLargeError, InvalidInputError

MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 20
FLUSH = 4 * 1024 * 1024
IN_FLIGHT = 2


@dataclass
class Form:
    """The text fields of a form and its one file, staged."""

    fields: dict[str, str] = field(default_factory=dict)
    file: StagedContent | None = None


class _Collector:
    def __init__(self, stager: ContentStager, file_field: str) -> None:
        self.stager = stager
        self.file_field = file_field
        self.form = Form()
        self.filename: str | None = None
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.flushes: list[bytes] = []
        self._headers: dict[bytes, bytes] = {}
        self._hname = bytearray()
        self._hvalue = bytearray()
        self._name: str | None = None
        self._is_file = False
        self._value = bytearray()
        self.saw_file = False

    def on_part_begin(self) -> None:
        self._headers, self._name, self._is_file, self._value = {}, None, False, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._hname).lower()] = bytes(self._hvalue)
        self._hname, self._hvalue = bytearray(), bytearray()

    def on_headers_finished(self) -> None:
        _disp, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        self._name = name
        if name == self.file_field:
            if self.saw_file:
                raise InvalidInputError(f"send exactly one {self.file_field!r} part")
            self.saw_file = self._is_file = True
            raw = params.get(b"filename")
            self.filename = raw.decode("utf-8", "replace") if raw is not None else None
        elif len(self.form.fields) >= MAX_FIELDS:
            raise InvalidInputError(f"too many form fields (at most {MAX_FIELDS})")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            # A whole chunk is passed on as is (slicing all of a bytes object does not copy it).
            self.pending.append(data[start:end])
            self.pending_size += end - start
            if self.pending_size >= FLUSH:
                self.flushes.extend(self.pending)
                self.pending, self.pending_size = [], 0
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise InvalidInputError(f"form field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if self._is_file:
            if self.pending:
                self.flushes.extend(self.pending)
                self.pending, self.pending_size = [], 0
        elif self._name:
            try:
                self.form.fields[self._name] = self._value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInputError(f"form field {self._name!r} is not UTF-8 text") from exc
            if "\x00" in self.form.fields[self._name]:
                raise InvalidInputError(f"form field {self._name!r} contains a NUL character", field=self._name)


def _write(stager: ContentStager, data: bytes) -> None:
    stager.digest(data)
    stager.store(data)


class _Pipeline:
    """Hashing and storing (encrypt + write) run on a worker thread, in order, while the event loop goes on
    receiving and parsing; the event loop counts each batch against the limit first. At most IN_FLIGHT
    batches wait, so memory stays bounded."""

    def __init__(self, stager: ContentStager) -> None:
        self._stager = stager
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload")
        self._pending: deque[asyncio.Future] = deque()

    async def submit(self, batch: list[bytes]) -> None:
        """Queue a batch (the chunks of up to FLUSH bytes); raises ContentTooLargeError past the limit."""
        # One joined buffer per batch: one long hash call that releases the GIL and whole segments sealed
        # straight from it, instead of thousands of short calls.
        data = batch[0] if len(batch) == 1 else b"".join(batch)
        self._stager.count(data)
        loop = asyncio.get_running_loop()
        self._pending.append(loop.run_in_executor(self._pool, _write, self._stager, data))
        while len(self._pending) > IN_FLIGHT:
            await self._pending.popleft()

    async def drain(self, *, raise_errors: bool = True) -> None:
        """Wait for every queued batch."""
        while self._pending:
            try:
                await self._pending.popleft()
            except Exception:
                if raise_errors:
                    raise

    def close(self) -> None:
        """Release the worker thread."""
        self._pool.shutdown(wait=False)


async def read_form(request: Request, *, max_bytes: int, tmp_dir, file_field: str = "file",  # noqa: ANN001
                    require_file: bool = True, sealer: Sealer | None = None) -> Form:
    """Parse the request body as multipart/form-data, staging the file part (encrypted on arrival when a
    sealer is given; it is aborted on any failure); 4xx errors for bad input."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    declared = request.headers.get("content-length")
    problem: Exception | None = None
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        problem = InvalidInputError("send the request as multipart/form-data with a boundary")
    elif declared and declared.isdigit() and int(declared) > max_bytes + 2 * MAX_FIELD_BYTES * MAX_FIELDS:
        problem = ContentTooLargeError(f"the upload is larger than the limit of {max_bytes} bytes", limit=max_bytes)
    if problem is not None:
        if sealer is not None:
            sealer.abort()
        raise problem
    stager = ContentStager(max_bytes=max_bytes, tmp_dir=tmp_dir, sealer=sealer)
    collector = _Collector(stager, file_field)
    callbacks = {name: getattr(collector, name) for name in (
        "on_part_begin", "on_header_field", "on_header_value", "on_header_end", "on_headers_finished",
        "on_part_data", "on_part_end")}
    parser = MultipartParser(params[b"boundary"], callbacks)
    writer = _Pipeline(stager)
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if collector.flushes:
                batch, collector.flushes = collector.flushes, []
                await writer.submit(batch)
        parser.finalize()
        if collector.flushes:
            await writer.submit(collector.flushes)
        await writer.drain()
    except BaseException as exc:
        await writer.drain(raise_errors=False)
        stager.discard()
        if isinstance(exc, (ClientDisconnect, InvalidInputError, ContentTooLargeError)) or not isinstance(
            exc, Exception
        ):
            raise
        raise InvalidInputError(f"the multipart body is malformed: {exc}") from exc
    finally:
        writer.close()
    if not collector.saw_file:
        stager.discard()
        if require_file:
            raise InvalidInputError(f"the form has no {file_field!r} file part", field=file_field)
        return collector.form
    collector.form.file = stager.finish(collector.filename)
    return collector.form


async def stage_body(request: Request, max_bytes: int, tmp_dir) -> StagedContent:  # noqa: ANN001
    """Stage a raw (non-multipart) request body, refusing it past `max_bytes`."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ContentTooLargeError(f"the upload is larger than the limit of {max_bytes} bytes", limit=max_bytes)
    stager = ContentStager(max_bytes=max_bytes, tmp_dir=tmp_dir)
    try:
        async for chunk in request.stream():
            if chunk:
                stager.write(chunk)
    except BaseException:
        stager.discard()
        raise
    return stager.finish()
