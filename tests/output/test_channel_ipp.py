"""Print-device channel against CUPS's ippeveprinter on loopback (ops/ipp-printer.sh), plus the IPP codec."""

from __future__ import annotations

import os
import socket
import struct
import time
import uuid
from pathlib import Path

import pytest

from output.channels import Outgoing, Recipient, get_channel
from output.channels import _ipp_codec as ipp
from repository.config import Settings
from tests.conftest import service_missing

IPP_URI = os.environ.get("POSTROOM_TEST_IPP_URI", "")
IPP_SPOOL = os.environ.get("POSTROOM_TEST_IPP_SPOOL", "")


def _pdf(marker: str) -> bytes:
    objects = ["<</Type/Catalog/Pages 2 0 R>>", "<</Type/Pages/Kids[3 0 R]/Count 1>>",
               "<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>"]
    body, offsets = b"%PDF-1.4\n", []
    for number, obj in enumerate(objects, 1):
        offsets.append(len(body))
        body += f"{number} 0 obj{obj}endobj\n".encode()
    xref = len(body)
    body += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    body += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    body += f"trailer<</Size {len(objects) + 1}/Root 1 0 R>>\n%{marker}\nstartxref\n{xref}\n%%EOF\n".encode()
    return body


def _letter(pdf: bytes | None, key: str) -> Outgoing:
    return Outgoing(
        letter_id=f"L-{key}", channel="print", idempotency_key=key,
        recipient=Recipient(name="Ada", email=None, mobile=None, address={"country": "GB"}, locale="en-GB"),
        category="regulatory", subject="Notice", pdf=pdf, portal_url=None, sensitive=False, text_body="",
        html_body="")


@pytest.fixture
def printer_uri() -> str:
    """The running ippeveprinter's URI (skip loudly, or fail in CI, when it is not there)."""
    if not IPP_URI:
        service_missing("ipp", "POSTROOM_TEST_IPP_URI is not set (ops/ipp-printer.sh start)")
    channel = get_channel("print", Settings(ipp_printer_uri=IPP_URI, ipp_timeout_seconds=5))
    try:
        channel._call(ipp.GET_JOBS, [])
    except Exception as exc:  # unreachable printer
        service_missing("ipp", f"no IPP printer answers at {IPP_URI}: {exc}")
    return IPP_URI


@pytest.mark.ipp
@pytest.mark.slow
def test_a_job_is_printed_to_completion_and_spooled(printer_uri) -> None:  # noqa: ANN001
    channel = get_channel("print", Settings(ipp_printer_uri=printer_uri, ipp_timeout_seconds=10))
    marker = uuid.uuid4().hex
    pdf = _pdf(marker)
    key = f"letter-{marker}:print:1"
    sent = channel.send(_letter(pdf, key))
    assert sent.status == "sent", sent.detail
    assert sent.provider_ref and sent.provider_ref.startswith("ipp://")

    again = channel.send(_letter(pdf, key))  # a retry after a crash finds the job instead of printing twice
    assert (again.status, again.provider_ref) == ("sent", sent.provider_ref)

    deadline, outcome = time.monotonic() + 90, None
    while outcome is None and time.monotonic() < deadline:
        outcome = channel.check(sent.provider_ref)
        if outcome is None:
            time.sleep(0.5)
    assert outcome is not None, "the job did not finish within 90 s"
    assert outcome.status == "delivered", outcome.detail

    if IPP_SPOOL:
        spooled = [p for p in Path(IPP_SPOOL).glob("*.pdf") if p.read_bytes() == pdf]
        assert len(spooled) == 1, f"the printer's spool should hold the PDF once, found {spooled}"


@pytest.mark.ipp
def test_wrong_printer_path_is_a_retryable_failure(printer_uri) -> None:  # noqa: ANN001
    wrong = printer_uri.rsplit("/", 1)[0] + "/no-such-printer"
    result = get_channel("print", Settings(ipp_printer_uri=wrong, ipp_timeout_seconds=5)).send(
        _letter(_pdf("x"), "wrong-path"))
    assert (result.status, result.retryable) == ("failed", True), result.detail


def test_printer_not_listening_is_a_retryable_failure() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    channel = get_channel("print", Settings(ipp_printer_uri=f"ipp://127.0.0.1:{port}/ipp/print",
                                            ipp_timeout_seconds=3))
    result = channel.send(_letter(_pdf("y"), "down"))
    assert (result.status, result.retryable) == ("failed", True)
    assert channel.check(f"ipp://127.0.0.1:{port}/ipp/print/7") is None


def test_no_pdf_is_refused() -> None:
    channel = get_channel("print", Settings(ipp_printer_uri="ipp://127.0.0.1:9/ipp/print"))
    assert channel.send(_letter(None, "k")).retryable is False
    with pytest.raises(ValueError):
        get_channel("print", Settings(ipp_printer_uri="http://127.0.0.1/ipp/print"))


def test_codec_encodes_a_request_as_rfc_8010_says() -> None:
    raw = ipp.encode_request(ipp.PRINT_JOB, 7, [(ipp.OPERATION, [
        (ipp.CHARSET, "attributes-charset", "utf-8"),
        (ipp.KEYWORD, "requested-attributes", ["job-id", "job-state"]),
        (ipp.INTEGER, "job-id", 3)])], data=b"%PDF")
    assert raw[:8] == b"\x01\x01\x00\x02\x00\x00\x00\x07"
    assert raw[8] == ipp.OPERATION
    assert b"\x47\x00\x12attributes-charset\x00\x05utf-8" in raw
    assert b"\x44\x00\x14requested-attributes\x00\x06job-id\x44\x00\x00\x00\x09job-state" in raw
    assert b"\x21\x00\x06job-id\x00\x04\x00\x00\x00\x03" in raw
    assert raw.endswith(b"\x03%PDF")


def test_codec_decodes_groups_values_and_out_of_band() -> None:
    def attr(tag: int, name: str, value: bytes) -> bytes:
        return struct.pack(">BH", tag, len(name)) + name.encode() + struct.pack(">H", len(value)) + value

    raw = (b"\x01\x01\x04\x06\x00\x00\x00\x09" + b"\x01" + attr(0x41, "status-message", b"Not found")
           + b"\x02" + attr(0x23, "job-state", struct.pack(">i", 9)) + attr(0x44, "job-state-reasons", b"a")
           + attr(0x44, "", b"b") + attr(0x13, "job-printer-up-time", b"") + attr(0x22, "x", b"\x01")
           + b"\x02" + attr(0x21, "job-id", struct.pack(">i", 2)) + b"\x03")
    response = ipp.decode_response(raw)
    assert response.status == 0x0406 and not response.ok and response.request_id == 9
    assert response.first(ipp.OPERATION, "status-message") == "Not found"
    assert response.first(ipp.JOB, "job-state") == 9
    assert response.group(ipp.JOB)["job-state-reasons"] == ["a", "b"]
    assert response.group(ipp.JOB)["job-printer-up-time"] == [None] and response.first(ipp.JOB, "x") is True
    assert [g.get("job-id") for g in response.all_groups(ipp.JOB)] == [None, [2]]
    for broken in [b"", b"\x01\x01\x00\x00\x00\x00\x00\x01", raw[:-1], raw[:20], b"\x01\x01\x00\x00\x00\x00\x00\x01"
                   + attr(0x41, "a", b"b") + b"\x03"]:
        with pytest.raises(ipp.IppFormatError):
            ipp.decode_response(broken)


def _job_answer(status: int, state: int | None) -> bytes:
    def attr(tag: int, name: str, value: bytes) -> bytes:
        return struct.pack(">BH", tag, len(name)) + name.encode() + struct.pack(">H", len(value)) + value

    job = b"" if state is None else b"\x02" + attr(0x23, "job-state", struct.pack(">i", state)) + attr(
        0x44, "job-state-reasons", b"job-canceled-by-user" if state == 7 else b"none")
    return struct.pack(">BBHi", 1, 1, status, 1) + b"\x01" + attr(0x47, "attributes-charset", b"utf-8") + job + b"\x03"


@pytest.mark.parametrize(("status", "state", "expected"), [
    (0, 3, None), (0, 5, None), (0, 6, None), (0, 9, ("delivered", False)), (0, 8, ("failed", True)),
    (0, 7, ("failed", True)), (0x0406, None, ("failed", True)), (0x0400, None, ("failed", False)),
])
def test_job_states_map_to_results(status, state, expected) -> None:  # noqa: ANN001
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            seen.append(self.rfile.read(int(self.headers["Content-Length"])))
            body = _job_answer(status, state)
            self.send_response(200)
            self.send_header("Content-Type", "application/ipp")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        uri = f"ipp://127.0.0.1:{server.server_address[1]}/ipp/print"
        result = get_channel("print", Settings(ipp_printer_uri=uri, ipp_timeout_seconds=3)).check(f"{uri}/12")
    finally:
        server.shutdown()
        server.server_close()
    assert seen[0][2:4] == b"\x00\x09"  # Get-Job-Attributes
    assert b"\x21\x00\x06job-id\x00\x04\x00\x00\x00\x0c" in seen[0]
    assert (None if result is None else (result.status, result.retryable)) == expected
