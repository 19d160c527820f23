"""Email over SMTP: multipart text+HTML, the PDF attached (or only the portal link when sensitive), DSN parsing."""

from __future__ import annotations

import email
import email.policy
import hashlib
import html
import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.utils import formataddr, formatdate, parseaddr
from html.parser import HTMLParser
from urllib.parse import quote

from pydantic import SecretStr

from output.channels.base import SENT, TAKEN_OVER, ChannelNotConfiguredError, Outgoing, SendResult, failed

LETTER_HEADER = "X-Postroom-Letter"
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_MSGID = re.compile(r"<pr\.([A-Za-z0-9_-]+)\.[0-9a-f]{32}@[^>]*>")
_DOT_AT_LINE_START = re.compile(rb"(?m)^\.")  # SMTP dot-stuffing (RFC 5321 4.5.2)


def message_id_for(letter_id: str, idempotency_key: str, domain: str) -> str:
    """The Message-ID of a letter's email: the same for every retry of one idempotency key."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    # The letter id rides in the Message-ID so a bounce that kept only that header still names the letter.
    tag = letter_id if _SAFE_ID.fullmatch(letter_id) else "x" + letter_id.encode().hex()
    return f"<pr.{tag}.{digest}@{domain}>"


def letter_id_from_message_id(message_id: str) -> str | None:
    """The letter id inside a Message-ID made by message_id_for, or None."""
    match = _MSGID.search(message_id or "")
    if not match:
        return None
    tag = match.group(1)
    if tag.startswith("x") and len(tag) % 2 == 1:
        try:
            return bytes.fromhex(tag[1:]).decode()
        except ValueError:
            pass
    return tag


class _Links(HTMLParser):
    """The href of every <a> in an HTML body."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [value for name, value in attrs if name == "href" and value]


def links_to(page: str, url: str) -> bool:
    """True when the HTML has a link (<a href>) to `url`, or to a redirect that carries it (click tracking); the
    URL in a comment, an attribute or hidden text does not count."""
    parser = _Links()
    parser.feed(page)
    parser.close()
    carried = quote(url, safe="")
    return any(href == url or carried in href for href in parser.hrefs)


class EmailChannel:
    """Sends letters through an SMTP relay (plain, STARTTLS or implicit TLS; AUTH when a user is set)."""

    name = "email"

    def __init__(self, *, host: str, port: int, sender: str, tls: str = "none", user: str | None = None,
                 password: SecretStr | str = "", timeout: float = 30.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if tls not in ("none", "starttls", "ssl"):
            raise ValueError(f"tls must be none, starttls or ssl, not {tls!r}")
        self.host, self.port, self.sender, self.tls, self.user = host, port, sender, tls, user
        self._password = password if isinstance(password, SecretStr) else SecretStr(password)
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        domain = parseaddr(sender)[1].rpartition("@")[2]
        self.domain = domain or "postroom.invalid"

    @classmethod
    def from_settings(cls, settings) -> EmailChannel:  # noqa: ANN001
        """The channel as configured by POSTROOM_SMTP_*."""
        if not settings.smtp_host:
            raise ChannelNotConfiguredError("email", "smtp_host")
        context = ssl.create_default_context(cafile=str(settings.smtp_ca_file) if settings.smtp_ca_file else None)
        return cls(host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_from,
                   tls=settings.smtp_tls, user=settings.smtp_user, password=settings.smtp_password,
                   timeout=settings.smtp_timeout_seconds, ssl_context=context)

    def build(self, message: Outgoing) -> EmailMessage:
        """The MIME message for one letter."""
        text_body, html_body = message.text_body, message.html_body
        if message.sensitive and message.portal_url and message.portal_url not in text_body:
            text_body = f"{text_body.rstrip()}\n\n{message.portal_url}\n"
        if message.sensitive and message.portal_url and not links_to(html_body, message.portal_url):
            link = html.escape(message.portal_url)
            html_body = f'{html_body}\n<p><a href="{link}">{link}</a></p>\n'
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = formataddr((message.recipient.name, message.recipient.email or ""))
        msg["Subject"] = message.subject
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = message_id_for(message.letter_id, message.idempotency_key, self.domain)
        msg[LETTER_HEADER] = message.letter_id
        msg["Auto-Submitted"] = "auto-generated"
        if message.recipient.locale:
            msg["Content-Language"] = message.recipient.locale
        msg.set_content(text_body)
        msg.add_alternative(html_body, subtype="html")
        if message.pdf is not None and not message.sensitive:
            msg.add_attachment(message.pdf, maintype="application", subtype="pdf",
                               filename=f"letter-{message.letter_id}.pdf")
        return msg

    def send(self, message: Outgoing) -> SendResult:
        """Hand the letter to the SMTP relay; 4xx and connection trouble are retryable, 5xx are not."""
        if not message.recipient.email:
            return failed("recipient has no email address", retryable=False)
        if message.sensitive and not message.portal_url:
            return failed("a sensitive letter needs a portal link to send by email", retryable=False)
        mime = self.build(message)
        ref = mime["Message-ID"]
        try:
            with self._connect() as smtp:
                outcome = self._transfer(smtp, mime, message.recipient.email, ref, message.commit_point)
                if outcome is not None:
                    return outcome
        except smtplib.SMTPRecipientsRefused as exc:
            code, answer = next(iter(exc.recipients.values()))
            return _answer_failure(code, answer, ref)
        except smtplib.SMTPResponseException as exc:
            return _answer_failure(exc.smtp_code, exc.smtp_error, ref)
        except smtplib.SMTPNotSupportedError as exc:
            return failed(f"SMTP server does not support what is configured: {exc}", retryable=False,
                          provider_ref=ref)
        except ssl.SSLCertVerificationError as exc:
            return failed(f"SMTP server certificate not trusted: {exc.verify_message}", retryable=False,
                          provider_ref=ref)
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timeout, TLS handshake, disconnect
            return failed(f"SMTP connection failed: {exc.__class__.__name__}: {exc}", retryable=True,
                          provider_ref=ref)
        return SendResult(status=SENT, provider_ref=ref, detail="accepted by the SMTP relay", retryable=False)

    def _transfer(self, smtp: smtplib.SMTP, mime: EmailMessage, to: str, ref: str,
                  commit_point: Callable[[str], bool] | None) -> SendResult | None:
        """MAIL, RCPT, DATA, the message, then `commit_point` and only then the final dot: a relay delivers
        nothing whose data never ended, so a sender that dies before the dot sends nothing, and one that dies
        after it has already recorded the hand-over. None when the relay accepted; TAKEN_OVER when the commit
        point said no (nothing sent); `sent` when the relay's answer to the dot was lost (it may well have
        the message, and sending again could deliver it twice)."""
        sender = parseaddr(self.sender)[1]
        international = not (sender.isascii() and to.isascii())
        options = ["SMTPUTF8", "BODY=8BITMIME"] if international else []
        code, answer = smtp.mail(sender, options)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, answer, sender)
        code, answer = smtp.rcpt(to)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({to: (code, answer)})
        code, answer = smtp.docmd("data")
        if code != 354:
            raise smtplib.SMTPDataError(code, answer)
        policy = (email.policy.SMTPUTF8 if international else email.policy.SMTP).clone(linesep="\r\n")
        data = _DOT_AT_LINE_START.sub(b"..", mime.as_bytes(policy=policy))
        smtp.send(data if data.endswith(b"\r\n") else data + b"\r\n")
        if commit_point is not None and not commit_point(ref):
            smtp.close()  # the data never ends: the relay discards it
            return SendResult(status=TAKEN_OVER, provider_ref=ref, detail="another dispatcher owns this send",
                              retryable=False)
        smtp.send(b".\r\n")
        try:
            code, answer = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            return SendResult(status=SENT, provider_ref=ref, retryable=False,
                              detail=f"handed to the relay, whose answer was lost ({exc.__class__.__name__}); "
                                     "not sent again")
        if code != 250:
            raise smtplib.SMTPDataError(code, answer)
        return None

    def check(self, provider_ref: str) -> SendResult | None:
        """Email cannot be polled: news arrives as a bounce (parse_bounce), so it is always still pending."""
        return None

    def _connect(self) -> smtplib.SMTP:
        if self.tls == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                  context=self.ssl_context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.tls == "starttls":
                smtp.starttls(context=self.ssl_context)
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self._password.get_secret_value())
        except BaseException:
            smtp.close()
            raise
        return smtp


def _answer_failure(code: int, answer: bytes | str, ref: str) -> SendResult:
    text = answer.decode(errors="replace") if isinstance(answer, bytes) else str(answer)
    # smtplib reports some local failures as code -1; treat anything not 5xx as worth another try.
    return failed(f"SMTP {code} {text}".strip(), retryable=not 500 <= code < 600, provider_ref=ref)


@dataclass(frozen=True)
class Bounce:
    """A failed delivery reported by a DSN (RFC 3464) for one of our letters."""

    letter_id: str
    status: str  # RFC 3463 enhanced status, e.g. "5.1.1"
    diagnostic: str

    @property
    def permanent(self) -> bool:
        """True for a 5.x.x status: retrying the same address will not help."""
        return self.status.startswith("5")


def parse_bounce(raw_message: bytes) -> Bounce | None:
    """The bounce a DSN reports for one of our letters; None if it is no DSN, not a failure, or not ours."""
    msg = email.message_from_bytes(raw_message, policy=email.policy.compat32)
    recipient_fields: Message | None = None
    original: Message | None = None
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status" and recipient_fields is None:
            recipient_fields = _failed_recipient(part)
        elif ctype == "message/rfc822" and original is None:
            payload = part.get_payload()
            original = payload[0] if isinstance(payload, list) and payload else None
        elif ctype == "text/rfc822-headers" and original is None:
            original = email.message_from_string(_text(part), policy=email.policy.compat32)
    if recipient_fields is None or original is None:
        return None
    letter_id = (original.get(LETTER_HEADER) or "").strip() or letter_id_from_message_id(original.get("Message-ID"))
    if not letter_id:
        return None
    status = (recipient_fields.get("Status") or "").strip().split(" ")[0] or "5.0.0"
    diagnostic = " ".join((recipient_fields.get("Diagnostic-Code") or "").split())
    return Bounce(letter_id=letter_id, status=status, diagnostic=diagnostic)


def _failed_recipient(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = [p for p in payload if isinstance(p, Message)]
    else:  # some parsers leave the status fields as text
        blocks = [email.message_from_string(b, policy=email.policy.compat32)
                  for b in re.split(r"\r?\n\r?\n", _text(part)) if b.strip()]
    for block in blocks[1:] or blocks:  # the first block holds the per-message fields
        if (block.get("Action") or "").strip().lower() == "failed":
            return block
    return None


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    raw = part.get_payload()
    return raw if isinstance(raw, str) else ""


__all__ = ["LETTER_HEADER", "Bounce", "EmailChannel", "letter_id_from_message_id", "message_id_for", "parse_bounce"]
