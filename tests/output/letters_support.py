"""Shared set-up for the letter tests: a warm LibreOffice pool, an approved template, customers, an SMTP
recorder (aiosmtpd) and the IPP printer from ops/services.sh."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pikepdf
import pytest
from aiosmtpd.controller import Controller

from correspondence import events as correspondence_events
from correspondence import service as corr
from output import service as output
from output.channels import get_channel
from output.compose import get_pool, reset_pool
from output.compose._worker import find_soffice
from repository import service
from repository.config import Settings, get_settings
from repository.db import transaction
from tests.conftest import service_missing
from tests.correspondence.docx_factory import make_docx
from tests.repository.helpers import staged

IPP_URI = os.environ.get("POSTROOM_TEST_IPP_URI", "")
SCHEMA = {"type": "object", "properties": {"balance": {"type": "number"}}, "required": ["balance"]}
BODY = ["Dear {{ customer.name }},", "Your balance is {{ balance }}.", "Reference {{ letter.reference }}.",
        "Yours sincerely,", "Postroom"]


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_pair() -> int:
    """A port P with P and P+1 free on loopback (a unoserver worker listens on both)."""
    for _ in range(50):
        base = free_port()
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", base))
                b.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        return base
    raise RuntimeError("no two free ports in a row")


@pytest.fixture(scope="module")
def uno_pool() -> Iterator[None]:
    """The process-wide converter pool with one warm worker on free ports, for the whole module."""
    if find_soffice(None) is None:
        service_missing("libreoffice", "soffice is not installed (ops/libreoffice.sh)")
    if subprocess.run(["/usr/bin/python3", "-c", "import uno"], capture_output=True).returncode != 0:
        service_missing("libreoffice", "/usr/bin/python3 cannot import uno (ops/libreoffice.sh)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSTROOM_UNO_WORKERS", "1")
        mp.setenv("POSTROOM_UNO_PORT_BASE", str(free_port_pair()))
        reset_pool()
        get_settings.cache_clear()
        get_pool().start()
        yield
        reset_pool()


class Recorder:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted"


@pytest.fixture
def smtp(monkeypatch) -> Iterator[Recorder]:  # noqa: ANN001
    """A real SMTP server on loopback, configured as Postroom's relay."""
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    try:
        controller.start()
    except Exception as exc:  # the server could not bind or start
        service_missing("smtp", f"aiosmtpd did not start: {exc}")
    monkeypatch.setenv("POSTROOM_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("POSTROOM_SMTP_PORT", str(port))
    monkeypatch.setenv("POSTROOM_SMTP_TIMEOUT_SECONDS", "5")
    get_settings.cache_clear()
    yield recorder
    controller.stop()


class SmsProvider:
    """A receiving HTTP server standing in for the SMS provider: records each request, answers 201."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                provider.requests.append({"headers": dict(self.headers), "body": json.loads(body)})
                answer = json.dumps({"id": f"m-{len(provider.requests)}"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/messages"


@pytest.fixture
def sms_provider(monkeypatch) -> Iterator[SmsProvider]:  # noqa: ANN001
    """A running SMS provider on loopback, configured as Postroom's, with no quiet hours."""
    fake = SmsProvider()
    thread = threading.Thread(target=fake.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("POSTROOM_SMS_URL", fake.url)
    monkeypatch.setenv("POSTROOM_SMS_API_KEY", "key-123")
    monkeypatch.setenv("POSTROOM_SMS_QUIET_HOURS", "")
    get_settings.cache_clear()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def printer(monkeypatch) -> str:  # noqa: ANN001
    """The ippeveprinter of ops/services.sh, configured as Postroom's print device."""
    if not IPP_URI:
        service_missing("ipp", "POSTROOM_TEST_IPP_URI is not set (ops/ipp-printer.sh start)")
    try:
        get_channel("print", Settings(ipp_printer_uri=IPP_URI, ipp_timeout_seconds=5))._find_job("probe")
    except Exception as exc:  # no printer there
        service_missing("ipp", f"no IPP printer answers at {IPP_URI}: {exc}")
    monkeypatch.setenv("POSTROOM_IPP_PRINTER_URI", IPP_URI)
    monkeypatch.setenv("POSTROOM_DISPATCH_CHECK_INTERVAL_SECONDS", "0")
    # ippeveprinter answers "busy" while it prints another job: retry at once, many times.
    monkeypatch.setenv("POSTROOM_DISPATCH_BACKOFF_SECONDS", "0")
    monkeypatch.setenv("POSTROOM_DISPATCH_MAX_ATTEMPTS", "200")
    get_settings.cache_clear()
    return IPP_URI


def approved_template(author, approver, name: str = "statement", category: str = "statement",  # noqa: ANN001
                      body: list[str] | None = None) -> str:
    """Create, submit and approve a template (paragraphs `body`, by default a one-page statement); its id."""
    correspondence_events.register()
    with transaction() as s:
        t = corr.create_template(s, actor=author.user, kind="template", name=name, locale="en-GB",
                                 content=staged(make_docx(body or BODY), f"{name}.docx"), category=category,
                                 schema=SCHEMA, sample_data={"balance": 1})
        template_id = t.id
    with transaction() as s:
        corr.submit(s, actor=author.user, template_id=template_id)
    with transaction() as s:
        corr.approve(s, actor=approver.user, template_id=template_id)
    return template_id


def customer(account, ref: str, **fields) -> str:  # noqa: ANN001, ANN003
    """Register a customer with a postal address (and the given fields); its id."""
    profile = {"name": "Ada Lovelace", "address_lines": ["1 High Street"], "city": "London", "postcode": "SW1A 1AA",
               "country": "GB", **fields}
    with transaction() as s:
        return service.create_customer(s, actor=account.user, external_ref=ref, **profile).id


def pdf_of(pages: int, title: str) -> bytes:
    """A small PDF of blank A4 pages, told apart by its title (for tests about which PDF is used, not composition)."""
    document = pikepdf.new()
    for _ in range(pages):
        document.add_blank_page(page_size=(595, 842))
    document.docinfo["/Title"] = title
    body = io.BytesIO()
    document.save(body)
    return body.getvalue()


def quick_letter(author, customer_id: str, pdf: bytes, *, channel: str | None = None,  # noqa: ANN001
                 category: str | None = None) -> str:
    """Render and archive a `statement` letter with the given PDF as its composed PDF (no LibreOffice); its id."""
    with transaction() as s:
        prepared = output.prepare_letter(s, actor=author.user, template="statement", customer_id=customer_id,
                                         data={"balance": 42}, channel=channel, category=category)
        with pikepdf.open(io.BytesIO(pdf)) as document:
            pages = len(document.pages)
        composed = output.ComposedLetter(prepared=prepared, pdf=pdf, pages=pages)
        return output.archive_letter(s, actor=author.user, composed=composed).id
