"""SMS channel against a receiving HTTP server on loopback that records requests and answers chosen statuses."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from output.channels import InvalidSignatureError, Outgoing, Recipient, get_channel
from output.channels._sms import compose_text, is_e164, parse_receipt, receipt_signature, segments
from repository.config import Settings

LINK = "https://portal.example.test/l/0f1e2d3c"


class Provider:
    """A fake SMS provider: records each request and answers from a queue of (status, json body, delay)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answers: list[tuple[int, dict | None, float]] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                provider.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                status, answer, delay = provider.answers.pop(0) if provider.answers else (201, {"id": "m-1"}, 0)
                time.sleep(delay)
                payload = json.dumps(answer).encode() if answer is not None else b""
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    if status == 429:
                        self.send_header("Retry-After", "30")
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/messages"


@pytest.fixture
def provider() -> Iterator[Provider]:
    """A running fake provider."""
    fake = Provider()
    thread = threading.Thread(target=fake.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def _channel(url: str, timeout: float = 5.0):  # noqa: ANN202
    return get_channel("sms", Settings(sms_url=url, sms_api_key="key-123", sms_from="Bank",
                                       sms_timeout_seconds=timeout))


def _letter(mobile: str | None = "+447911123456", text: str = "Your statement is ready.",
            link: str | None = LINK) -> Outgoing:
    return Outgoing(
        letter_id="L1", channel="sms", idempotency_key="L1:sms:1",
        recipient=Recipient(name="Ada", email=None, mobile=mobile, address={}, locale="en-GB"),
        category="billing", subject="Statement", pdf=None, portal_url=link, sensitive=True,
        text_body=text, html_body="")


def test_message_is_posted_with_the_key_and_the_link(provider) -> None:  # noqa: ANN001
    provider.answers = [(201, {"id": "msg-42"}, 0)]
    result = _channel(provider.url).send(_letter())
    assert (result.status, result.provider_ref) == ("sent", "msg-42")
    [request] = provider.requests
    assert request["path"] == "/v1/messages"
    assert request["headers"]["Authorization"] == "Bearer key-123"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["body"] == {"to": "+447911123456", "from": "Bank", "text": f"Your statement is ready. {LINK}",
                               "reference": "L1:sms:1"}


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (500, True), (503, True), (400, False),
                                                   (401, False), (422, False)])
def test_provider_errors_decide_retryability(provider, status, retryable) -> None:  # noqa: ANN001
    provider.answers = [(status, {"error": "nope"}, 0)]
    result = _channel(provider.url).send(_letter())
    assert (result.status, result.retryable) == ("failed", retryable)
    assert str(status) in result.detail


def test_slow_provider_times_out_as_retryable(provider) -> None:  # noqa: ANN001
    provider.answers = [(201, {"id": "late"}, 2.0)]
    started = time.monotonic()
    result = _channel(provider.url, timeout=0.5).send(_letter())
    assert time.monotonic() - started < 1.8
    assert (result.status, result.retryable) == ("failed", True)


def test_provider_down_is_retryable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _channel(f"http://127.0.0.1:{port}/v1/messages").send(_letter())
    assert (result.status, result.retryable) == ("failed", True)


@pytest.mark.parametrize("mobile", [None, "", "07911123456", "447911123456", "+44 7911 123456", "+447700900123",
                                    "+999123456789", "tel:+447911123456"])
def test_non_e164_numbers_are_refused_without_calling(provider, mobile) -> None:  # noqa: ANN001
    result = _channel(provider.url).send(_letter(mobile=mobile))
    assert (result.status, result.retryable) == ("failed", False)
    assert provider.requests == []


def test_long_message_is_cut_to_two_segments_keeping_the_link(provider) -> None:  # noqa: ANN001
    _channel(provider.url).send(_letter(text="Your statement is ready. " * 40))
    text = provider.requests[0]["body"]["text"]
    assert text.endswith(f"... {LINK}") and segments(text) == 2 and len(text) <= 306


def test_segment_arithmetic() -> None:
    assert segments("a" * 160) == 1 and segments("a" * 161) == 2 and segments("a" * 306) == 2
    assert segments("a" * 307) == 3
    assert segments("€" * 80) == 1 and segments("€" * 81) == 2  # extension characters cost two septets
    assert segments("ł" * 70) == 1 and segments("ł" * 71) == 2 and segments("ł" * 134) == 2
    text = compose_text("Zażółć gęślą jaźń. " * 20, LINK)
    assert text.endswith(LINK) and segments(text) == 2
    assert compose_text("short", "https://x.test/" + "a" * 400) is None
    assert compose_text("", LINK) == LINK
    assert compose_text("just text", None) == "just text"


def test_e164_validation() -> None:
    assert is_e164("+447911123456") and is_e164("+14155552671")
    assert not is_e164("+44791112345600") and not is_e164("+1415555267")


def test_receipt_with_a_good_signature_is_parsed() -> None:
    body = json.dumps({"id": "msg-42", "reference": "L1:sms:1", "status": "delivered"}).encode()
    receipt = parse_receipt(body, receipt_signature(body, "whsec"), "whsec")
    assert (receipt.provider_ref, receipt.reference, receipt.status) == ("msg-42", "L1:sms:1", "delivered")
    failed_body = json.dumps({"id": "msg-43", "status": "UNDELIVERED", "error": "handset off"}).encode()
    failed = parse_receipt(failed_body, receipt_signature(failed_body, "whsec"), "whsec")
    assert (failed.status, failed.detail, failed.reference) == ("failed", "handset off", None)


def test_receipt_with_a_bad_signature_or_body_is_refused() -> None:
    body = json.dumps({"id": "msg-42", "status": "delivered"}).encode()
    for signature in [None, "", receipt_signature(body, "other"), receipt_signature(body + b" ", "whsec")]:
        with pytest.raises(InvalidSignatureError):
            parse_receipt(body, signature, "whsec")
    with pytest.raises(ValueError):
        parse_receipt(b"[1]", receipt_signature(b"[1]", "whsec"), "whsec")


def test_api_key_is_not_shown() -> None:
    settings = Settings(sms_url="http://127.0.0.1:1/x", sms_api_key="very-secret-key")
    assert "very-secret-key" not in repr(settings)
    assert "very-secret-key" not in repr(get_channel("sms", settings).__dict__)
