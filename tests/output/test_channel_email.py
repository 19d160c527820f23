"""Email channel against a real SMTP server (aiosmtpd) on loopback: plain, STARTTLS+AUTH, implicit TLS, failures."""

from __future__ import annotations

import dataclasses
import datetime
import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from output.channels import InvalidSignatureError, Outgoing, Recipient, get_channel, tracking_token
from output.channels import verify_tracking_token as verify
from output.channels._email import EmailChannel, message_id_for, parse_bounce
from repository.config import Settings
from tests.conftest import service_missing

pytestmark = pytest.mark.smtp

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


class Recorder:
    """An aiosmtpd handler that keeps every message and can refuse chosen recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(controller: Controller) -> Controller:
    try:
        controller.start()
    except Exception as exc:  # the server could not bind or start
        service_missing("smtp", f"aiosmtpd did not start: {exc}")
    return controller


@pytest.fixture
def smtp() -> Iterator[tuple[Recorder, int]]:
    """A plain SMTP server on loopback recording what it receives."""
    recorder = Recorder()
    port = _free_port()
    controller = _start(Controller(recorder, hostname="127.0.0.1", port=port))
    yield recorder, port
    controller.stop()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[Path, Path]:  # noqa: ANN001
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _server_context(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    return context


def _letter(*, sensitive: bool = False, pdf: bytes | None = PDF, key: str = "L1:email:1",
            to: str | None = "ada@example.test") -> Outgoing:
    return Outgoing(
        letter_id="0f1e2d3c-aaaa-bbbb-cccc-123456789abc", channel="email", idempotency_key=key,
        recipient=Recipient(name="Ada Lovelace", email=to, mobile=None, address={}, locale="en-GB"),
        category="billing", subject="Your annual statement", pdf=pdf,
        portal_url="https://portal.example.test/letters/0f1e2d3c" if sensitive else None, sensitive=sensitive,
        text_body="Dear Ada,\nyour statement is ready.\n", html_body="<p>Dear Ada,</p><p>your statement is ready.</p>")


def _parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def _settings(**overrides) -> Settings:  # noqa: ANN003
    return Settings(smtp_from="Postroom <letters@bank.example.test>", smtp_timeout_seconds=5, **overrides)


def test_letter_arrives_with_both_bodies_and_the_pdf(smtp) -> None:  # noqa: ANN001
    recorder, port = smtp
    channel = get_channel("email", _settings(smtp_host="127.0.0.1", smtp_port=port))
    result = channel.send(_letter())
    assert result.status == "sent", result.detail
    assert len(recorder.messages) == 1
    mail_from, rcpts, raw = recorder.messages[0]
    assert mail_from == "letters@bank.example.test" and rcpts == ["ada@example.test"]
    msg = _parse(raw)
    assert msg["X-Postroom-Letter"] == "0f1e2d3c-aaaa-bbbb-cccc-123456789abc"
    assert msg["Message-ID"] == result.provider_ref
    assert msg["Subject"] == "Your annual statement"
    assert "Ada Lovelace" in msg["To"]
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Dear Ada,\nyour statement is ready.\n"
    assert "<p>Dear Ada,</p>" in msg.get_body(("html",)).get_content()
    attachments = list(msg.iter_attachments())
    assert len(attachments) == 1
    assert attachments[0].get_content_type() == "application/pdf"
    assert attachments[0].get_filename().endswith(".pdf")
    assert attachments[0].get_content() == PDF


def test_sensitive_letter_carries_the_portal_link_and_no_attachment(smtp) -> None:  # noqa: ANN001
    recorder, port = smtp
    channel = get_channel("email", _settings(smtp_host="127.0.0.1", smtp_port=port))
    assert channel.send(_letter(sensitive=True)).status == "sent"
    msg = _parse(recorder.messages[0][2])
    assert list(msg.iter_attachments()) == []
    assert b"%PDF" not in recorder.messages[0][2]
    assert "https://portal.example.test/letters/0f1e2d3c" in msg.get_body(("plain",)).get_content()
    assert 'href="https://portal.example.test/letters/0f1e2d3c"' in msg.get_body(("html",)).get_content()


@pytest.mark.parametrize("hidden", [
    '<p>Read it online.</p><!-- https://portal.example.test/letters/0f1e2d3c -->',
    '<p>Read it <span style="display:none">https://portal.example.test/letters/0f1e2d3c</span></p>',
    '<p><img alt="https://portal.example.test/letters/0f1e2d3c" src="cid:x"></p>',
])
def test_a_sensitive_email_whose_html_only_hides_the_link_gets_a_real_link(hidden: str) -> None:
    channel = get_channel("email", _settings(smtp_host="127.0.0.1", smtp_port=_free_port()))
    page = channel.build(Outgoing(**{**_letter(sensitive=True).__dict__, "html_body": hidden})) \
        .get_body(("html",)).get_content()
    assert '<a href="https://portal.example.test/letters/0f1e2d3c">' in page


def test_a_retry_carries_the_same_message_id(smtp) -> None:  # noqa: ANN001
    recorder, port = smtp
    channel = get_channel("email", _settings(smtp_host="127.0.0.1", smtp_port=port))
    first, second = channel.send(_letter()), channel.send(_letter())
    other = channel.send(_letter(key="L1:email:2"))
    ids = [_parse(raw)["Message-ID"] for _, _, raw in recorder.messages]
    assert ids[0] == ids[1] == first.provider_ref == second.provider_ref
    assert ids[2] != ids[0] and other.provider_ref == ids[2]


def test_the_commit_point_comes_before_the_end_of_data_and_can_stop_the_send(smtp) -> None:  # noqa: ANN001
    recorder, port = smtp
    channel = get_channel("email", _settings(smtp_host="127.0.0.1", smtp_port=port))
    seen: list[tuple[str, int]] = []

    def refuse(ref: str) -> bool:
        seen.append((ref, len(recorder.messages)))
        return False

    stopped = channel.send(dataclasses.replace(_letter(), commit_point=refuse))
    assert (stopped.status, stopped.retryable) == ("taken_over", False)
    assert recorder.messages == []  # the data was sent but never ended: the relay delivered nothing
    seen.clear()
    sent = channel.send(dataclasses.replace(_letter(), commit_point=lambda ref: seen.append((ref, len(
        recorder.messages))) or True))
    assert sent.status == "sent" and len(recorder.messages) == 1
    assert seen == [(sent.provider_ref, 0)]  # called once, with the Message-ID, before the relay had the message
    body = email.message_from_bytes(recorder.messages[0][2], policy=email.policy.default)
    assert body["Message-ID"] == sent.provider_ref


def test_smtp_answers_decide_retryability(smtp) -> None:  # noqa: ANN001
    recorder, port = smtp
    recorder.refuse = {"busy@example.test": "451 4.3.0 Try again later",
                       "gone@example.test": "550 5.1.1 No such user"}
    channel = get_channel("email", _settings(smtp_host="127.0.0.1", smtp_port=port))
    busy = channel.send(_letter(to="busy@example.test"))
    assert (busy.status, busy.retryable) == ("failed", True) and "451" in busy.detail
    gone = channel.send(_letter(to="gone@example.test"))
    assert (gone.status, gone.retryable) == ("failed", False) and "550" in gone.detail
    assert recorder.messages == []


def test_server_down_is_a_retryable_failure() -> None:
    channel = get_channel("email", _settings(smtp_host="127.0.0.1", smtp_port=_free_port()))
    result = channel.send(_letter())
    assert (result.status, result.retryable) == ("failed", True)
    assert "refused" in result.detail.lower()


def test_no_address_or_no_link_fails_without_connecting() -> None:
    channel = get_channel("email", _settings(smtp_host="127.0.0.1", smtp_port=_free_port()))
    assert channel.send(_letter(to=None)).retryable is False
    no_link = _letter(sensitive=True)
    no_link = Outgoing(**{**no_link.__dict__, "portal_url": None})
    result = channel.send(no_link)
    assert (result.status, result.retryable) == ("failed", False)


def test_starttls_with_auth(tls_files) -> None:  # noqa: ANN001
    recorder, port, logins = Recorder(), _free_port(), []

    def authenticator(server, session, envelope, mechanism, auth_data):  # noqa: ANN001
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret", handled=False)

    controller = _start(Controller(recorder, hostname="127.0.0.1", port=port, tls_context=_server_context(tls_files),
                                   require_starttls=True, authenticator=authenticator, auth_required=True,
                                   auth_require_tls=True))
    try:
        settings = _settings(smtp_host="127.0.0.1", smtp_port=port, smtp_tls="starttls", smtp_user="postroom",
                             smtp_password="s3cret", smtp_ca_file=tls_files[0])
        result = get_channel("email", settings).send(_letter())
        assert result.status == "sent", result.detail
        assert logins == [(b"postroom", b"s3cret")]
        assert list(_parse(recorder.messages[0][2]).iter_attachments())[0].get_content() == PDF

        wrong = settings.model_copy(update={"smtp_password": "nope"})
        refused = get_channel("email", wrong).send(_letter())
        assert (refused.status, refused.retryable) == ("failed", False) and "535" in refused.detail

        untrusted = settings.model_copy(update={"smtp_ca_file": None})
        result = get_channel("email", untrusted).send(_letter())
        assert (result.status, result.retryable) == ("failed", False) and "certificate" in result.detail
        assert len(recorder.messages) == 1
    finally:
        controller.stop()


def test_implicit_tls(tls_files) -> None:  # noqa: ANN001
    recorder, port = Recorder(), _free_port()
    controller = _start(Controller(recorder, hostname="127.0.0.1", port=port, ssl_context=_server_context(tls_files)))
    try:
        settings = _settings(smtp_host="127.0.0.1", smtp_port=port, smtp_tls="ssl", smtp_ca_file=tls_files[0])
        assert get_channel("email", settings).send(_letter()).status == "sent"
        assert len(recorder.messages) == 1
    finally:
        controller.stop()


def test_password_is_not_shown() -> None:
    settings = _settings(smtp_host="127.0.0.1", smtp_password="hunter2-secret")
    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" not in repr(get_channel("email", settings).__dict__)


def _dsn(original_headers: str, action: str = "failed", status: str = "5.1.1") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.test\r\nTo: letters@bank.example.test\r\nSubject: Undelivered Mail\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.test\r\nArrival-Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n"
        f"Final-Recipient: rfc822; ada@example.test\r\nAction: {action}\r\nStatus: {status}\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <ada@example.test>:\r\n  Recipient address rejected\r\n\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n{original_headers}\r\n--B--\r\n"
    ).encode()


def test_bounce_names_the_letter_from_its_header_or_message_id() -> None:
    mid = message_id_for("0f1e2d3c-aaaa-bbbb-cccc-123456789abc", "L1:email:1", "bank.example.test")
    bounce = parse_bounce(_dsn(f"Message-ID: {mid}\r\nX-Postroom-Letter: letter-from-header\r\n"))
    assert bounce is not None and bounce.letter_id == "letter-from-header"
    assert bounce.status == "5.1.1" and bounce.permanent
    assert bounce.diagnostic == "smtp; 550 5.1.1 <ada@example.test>: Recipient address rejected"
    only_id = parse_bounce(_dsn(f"Message-ID: {mid}\r\nSubject: x\r\n"))
    assert only_id is not None and only_id.letter_id == "0f1e2d3c-aaaa-bbbb-cccc-123456789abc"
    odd = message_id_for("letter/with spaces", "k", "d.test")
    assert parse_bounce(_dsn(f"Message-ID: {odd}\r\n")).letter_id == "letter/with spaces"


def test_bounce_of_a_full_returned_message_sent_by_the_channel(smtp) -> None:  # noqa: ANN001
    recorder, port = smtp
    get_channel("email", _settings(smtp_host="127.0.0.1", smtp_port=port)).send(_letter())
    returned = recorder.messages[0][2].decode()
    raw = _dsn("").replace(b"text/rfc822-headers\r\n\r\n\r\n", b"message/rfc822\r\n\r\n" + returned.encode())
    bounce = parse_bounce(raw)
    assert bounce is not None and bounce.letter_id == "0f1e2d3c-aaaa-bbbb-cccc-123456789abc"


def test_not_a_bounce() -> None:
    assert parse_bounce(b"From: a@b.test\r\nSubject: hello\r\n\r\nhi\r\n") is None
    assert parse_bounce(_dsn("Message-ID: <someone-else@x.test>\r\n")) is None
    assert parse_bounce(_dsn("X-Postroom-Letter: L1\r\n", action="delayed", status="4.4.1")) is None
    assert parse_bounce(b"\xff\xfe garbage") is None


def test_tracking_tokens_round_trip_and_refuse_forgeries() -> None:
    token = tracking_token("L1", "email", "secret")
    assert verify(token, "secret") == ("L1", "email")
    for forged in [tracking_token("L1", "email", "other"), token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),
                   "nonsense", "", token.replace(".", "")]:
        with pytest.raises(InvalidSignatureError):
            verify(forged, "secret")
    with pytest.raises(ValueError):
        tracking_token("L1", "email", "")


def test_email_channel_is_not_built_without_a_host() -> None:
    from output.channels import ChannelNotConfiguredError

    with pytest.raises(ChannelNotConfiguredError):
        get_channel("email", Settings(smtp_host=None))
    assert isinstance(EmailChannel(host="h", port=25, sender="a@b.test").check("<x@y>"), type(None))
