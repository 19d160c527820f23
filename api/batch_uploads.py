"""multipart/form-data with many small files (a batch upload): each `file` part staged in memory, within limits
on the number of files, each file's size and the whole body; small text fields collected with bounds."""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from api.uploads import PartReader
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


class _Collector(PartReader):
    def __init__(self, tmp_dir) -> None:  # noqa: ANN001
        super().__init__()
        self.tmp_dir = tmp_dir
        self.files: list[StagedContent] = []
        self._stager: ContentStager | None = None
        self._filename: str | None = None

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self._stager = None

    def on_headers_finished(self) -> None:
        filename = self.disposition()
        if self._name == "file":
            if len(self.files) >= MAX_FILES:
                raise InvalidInputError(f"a batch holds at most {MAX_FILES} files", field="file")
            self._stager = ContentStager(max_bytes=MAX_FILE_BYTES, tmp_dir=self.tmp_dir)
            self._filename = filename
        else:
            self.check_field_count()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._stager is None:
            self.field_data(data, start, end)
            return
        try:
            self._stager.write(data[start:end])
        except ContentTooLargeError:
            raise ContentTooLargeError(
                f"file {len(self.files) + 1} of the batch is larger than {MAX_FILE_BYTES} bytes; "
                "upload larger files one at a time", limit=MAX_FILE_BYTES) from None

    def on_part_end(self) -> None:
        if self._stager is None:
            self.field_end()
            return
        self.files.append(self._stager.finish(self._filename))
        self._stager = None


async def read_batch_form(request: Request, *, tmp_dir) -> BatchForm:  # noqa: ANN001
    """Parse a batch upload; 4xx errors for a malformed body or one past the limits (nothing is kept then)."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise InvalidInputError("send the request as multipart/form-data with a boundary")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ContentTooLargeError(f"a batch upload is at most {MAX_BODY_BYTES} bytes", limit=MAX_BODY_BYTES)
    collector = _Collector(tmp_dir)
    parser = MultipartParser(params[b"boundary"], collector.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > MAX_BODY_BYTES:
                raise ContentTooLargeError(f"a batch upload is at most {MAX_BODY_BYTES} bytes", limit=MAX_BODY_BYTES)
            parser.write(chunk)
        parser.finalize()
    except BaseException as exc:
        BatchForm(files=collector.files).release()
        if isinstance(exc, (ClientDisconnect, InvalidInputError, ContentTooLargeError)) or not isinstance(
            exc, Exception
        ):
            raise
        raise InvalidInputError(f"the multipart body is malformed: {exc}") from exc
    if not collector.files:
        raise InvalidInputError("the batch has no 'file' parts", field="file")
    return BatchForm(fields=collector.fields, files=collector.files)
