"""Streaming multipart/form-data: the file part goes straight into a ContentStager, with the size limit
enforced as bytes arrive; small text fields are collected with bounds."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
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


class PartReader:
    """The multipart parser callbacks every form reader shares: part headers, and bounded UTF-8 text fields."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self._headers: dict[bytes, bytes] = {}
        self._hname, self._hvalue, self._value = bytearray(), bytearray(), bytearray()
        self._name: str | None = None

    def callbacks(self) -> dict[str, Callable[..., None]]:
        """The callbacks for python-multipart's MultipartParser."""
        return {name: getattr(self, name) for name in (
            "on_part_begin", "on_header_field", "on_header_value", "on_header_end", "on_headers_finished",
            "on_part_data", "on_part_end")}

    def on_part_begin(self) -> None:
        self._headers, self._name, self._value = {}, None, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._hname).lower()] = bytes(self._hvalue)
        self._hname, self._hvalue = bytearray(), bytearray()

    def disposition(self) -> str | None:
        """Read the part's name (kept for its text) from Content-Disposition; returns its file name, if any."""
        _disp, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        raw = params.get(b"filename")
        return raw.decode("utf-8", "replace") if raw is not None else None

    def check_field_count(self) -> None:
        """Refuse one text field too many."""
        if len(self.fields) >= MAX_FIELDS:
            raise InvalidInputError(f"too many form fields (at most {MAX_FIELDS})")

    def field_data(self, data: bytes, start: int, end: int) -> None:
        """Collect a text field's bytes, refusing one past MAX_FIELD_BYTES."""
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise InvalidInputError(f"form field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes")

    def field_end(self) -> None:
        """Keep a finished text field: UTF-8 without NUL characters."""
        if not self._name:
            return
        try:
            text = self._value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"form field {self._name!r} is not UTF-8 text") from exc
        if "\x00" in text:
            raise InvalidInputError(f"form field {self._name!r} contains a NUL character", field=self._name)
        self.fields[self._name] = text


class _Collector(PartReader):
    def __init__(self, stager: ContentStager, file_field: str) -> None:
        super().__init__()
        self.stager = stager
        self.file_field = file_field
        self.filename: str | None = None
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.flushes: list[bytes] = []
        self._is_file = False
        self.saw_file = False

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self._is_file = False

    def on_headers_finished(self) -> None:
        filename = self.disposition()
        if self._name == self.file_field:
            if self.saw_file:
                raise InvalidInputError(f"send exactly one {self.file_field!r} part")
            self.saw_file = self._is_file = True
            self.filename = filename
        else:
            self.check_field_count()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            # A whole chunk is passed on as is (slicing all of a bytes object does not copy it).
            self.pending.append(data[start:end])
            self.pending_size += end - start
            if self.pending_size >= FLUSH:
                self.flushes.extend(self.pending)
                self.pending, self.pending_size = [], 0
            return
        self.field_data(data, start, end)

    def on_part_end(self) -> None:
        if self._is_file:
            if self.pending:
                self.flushes.extend(self.pending)
                self.pending, self.pending_size = [], 0
        else:
            self.field_end()


class _Pipeline:
    """Hashing and storing (encrypt + write) each run on a worker thread of their own, in order, while the event
    loop goes on receiving and parsing; the event loop counts each batch against the limit first. SHA-256 and
    AES-GCM both release the GIL, so the two threads use two cores (measured: 1 GiB hashed then encrypted on one
    thread 1.55 s, on two 1.04 s). At most IN_FLIGHT batches wait, so memory stays bounded."""

    def __init__(self, stager: ContentStager) -> None:
        self._stager = stager
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload-hash")
        self._storer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload-store")
        self._pending: deque[tuple[asyncio.Future, asyncio.Future]] = deque()

    async def submit(self, batch: list[bytes]) -> None:
        """Queue a batch (the chunks of up to FLUSH bytes); raises ContentTooLargeError past the limit."""
        # One joined buffer per batch: one long hash call that releases the GIL and whole segments sealed
        # straight from it, instead of thousands of short calls.
        data = batch[0] if len(batch) == 1 else b"".join(batch)
        self._stager.count(data)
        loop = asyncio.get_running_loop()
        self._pending.append((loop.run_in_executor(self._hasher, self._stager.digest, data),
                              loop.run_in_executor(self._storer, self._stager.store, data)))
        while len(self._pending) > IN_FLIGHT:
            await self._wait(self._pending.popleft())

    async def drain(self, *, raise_errors: bool = True) -> None:
        """Wait for every queued batch."""
        while self._pending:
            try:
                await self._wait(self._pending.popleft())
            except Exception:
                if raise_errors:
                    raise

    @staticmethod
    async def _wait(pair: tuple[asyncio.Future, asyncio.Future]) -> None:
        results = await asyncio.gather(*pair, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def close(self) -> None:
        """Release the worker threads."""
        self._hasher.shutdown(wait=False)
        self._storer.shutdown(wait=False)


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
    parser = MultipartParser(params[b"boundary"], collector.callbacks())
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
        return Form(fields=collector.fields)
    return Form(fields=collector.fields, file=stager.finish(collector.filename))


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
