"""SMS through an HTTP provider: a JSON POST with a bearer key, E.164 numbers only, at most two segments."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

import phonenumbers
from pydantic import SecretStr

from output.channels.base import (
    DELIVERED,
    FAILED,
    SENT,
    ChannelNotConfiguredError,
    InvalidSignatureError,
    Outgoing,
    SendResult,
    failed,
)
from output.channels.signatures import secret_bytes

# GSM 03.38: the basic set costs one septet, the extension set two; anything else forces UCS-2.
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")
MAX_SEGMENTS = 2
_ELLIPSIS = "..."


def is_e164(number: str | None) -> bool:
    """True when the number is a valid phone number written in strict E.164 form (+ and digits)."""
    if not number or not re.fullmatch(r"\+[1-9]\d{1,14}", number):
        return False
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(parsed)


def _septets(text: str) -> int | None:
    """GSM-7 length in septets, or None when the text needs UCS-2."""
    total = 0
    for char in text:
        if char in _GSM_BASIC:
            total += 1
        elif char in _GSM_EXTENDED:
            total += 2
        else:
            return None
    return total


def segments(text: str) -> int:
    """How many SMS segments the text takes (GSM-7 160/153 per segment, UCS-2 70/67 in UTF-16 units)."""
    septets = _septets(text)
    if septets is not None:
        single, multi, length = 160, 153, septets
    else:
        single, multi, length = 70, 67, len(text.encode("utf-16-le")) // 2
    return 1 if length <= single else -(-length // multi)


def compose_text(message: str, link: str | None, *, max_segments: int = MAX_SEGMENTS) -> str | None:
    """The short message plus the link within max_segments, shortening the message, never the link; None if the
    link alone does not fit."""
    message = " ".join(message.split())
    suffix = f" {link}" if link else ""
    if link and segments(link) > max_segments:
        return None
    text = (message + suffix).strip()
    if segments(text) <= max_segments:
        return text
    # Cut whole characters off the message until it fits; binary search keeps this cheap for long bodies.
    low, high = 0, len(message)
    while low < high:
        mid = (low + high + 1) // 2
        candidate = (message[:mid].rstrip() + _ELLIPSIS + suffix).strip()
        if segments(candidate) <= max_segments:
            low = mid
        else:
            high = mid - 1
    return (message[:low].rstrip() + _ELLIPSIS + suffix).strip() if low else (link or None)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return None  # never carry the API key to another address


class SmsChannel:
    """Sends a short message with the letter's portal link through an HTTP SMS provider."""

    name = "sms"

    def __init__(self, *, url: str, api_key: SecretStr | str, sender: str, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("the SMS provider URL must be http(s)")
        self.url, self.sender, self.timeout = url, sender, timeout
        self._api_key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self._opener = urllib.request.build_opener(_NoRedirect)

    @classmethod
    def from_settings(cls, settings) -> SmsChannel:  # noqa: ANN001
        """The channel as configured by POSTROOM_SMS_*."""
        if not settings.sms_url:
            raise ChannelNotConfiguredError("sms", "sms_url")
        return cls(url=settings.sms_url, api_key=settings.sms_api_key, sender=settings.sms_from,
                   timeout=settings.sms_timeout_seconds)

    def send(self, message: Outgoing) -> SendResult:
        """POST the message to the provider; 429 and 5xx and network trouble are retryable, other 4xx are not."""
        number = message.recipient.mobile
        if not is_e164(number):
            return failed(f"mobile number {number!r} is not a valid E.164 number", retryable=False)
        text = compose_text(message.text_body, message.portal_url)
        if not text:
            return failed("nothing to send: the portal link does not fit in an SMS or the text is empty",
                          retryable=False)
        body = json.dumps({"to": number, "from": self.sender, "text": text,
                           "reference": message.idempotency_key}).encode()
        request = urllib.request.Request(self.url, data=body, method="POST", headers={  # noqa: S310
            "Authorization": f"Bearer {self._api_key.get_secret_value()}",
            "Content-Type": "application/json", "Accept": "application/json",
            "Idempotency-Key": message.idempotency_key})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status, answer = response.status, response.read(64 * 1024)
        except urllib.error.HTTPError as exc:
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            detail = f"SMS provider answered {exc.code}" + (f" (Retry-After {retry_after})" if retry_after else "")
            return failed(detail, retryable=exc.code == 429 or exc.code >= 500)
        except TimeoutError:
            return failed(f"SMS provider did not answer within {self.timeout:g}s", retryable=True)
        except (urllib.error.URLError, OSError) as exc:
            return failed(f"SMS provider unreachable: {getattr(exc, 'reason', exc)}", retryable=True)
        try:
            provider_id = json.loads(answer).get("id")
        except (ValueError, AttributeError):
            provider_id = None
        if not 200 <= status < 300:
            return failed(f"SMS provider answered {status}", retryable=False)
        # Accepted but unnamed: resending could double the message, so it counts as sent without a reference.
        ref = str(provider_id) if provider_id not in (None, "") else None
        return SendResult(status=SENT, provider_ref=ref, detail=f"accepted by the SMS provider ({status})",
                          retryable=False)

    def check(self, provider_ref: str) -> SendResult | None:
        """SMS cannot be polled: delivery receipts arrive by webhook (parse_receipt), so it is still pending."""
        return None


@dataclass(frozen=True)
class Receipt:
    """A delivery receipt from the SMS provider."""

    provider_ref: str
    reference: str | None  # our idempotency key, echoed by the provider
    status: str  # "sent" | "delivered" | "failed"
    detail: str


_RECEIPT_STATUS = {"delivered": DELIVERED, "failed": FAILED, "undelivered": FAILED, "rejected": FAILED,
                   "expired": FAILED}


def receipt_signature(body: bytes, secret: SecretStr | str | bytes) -> str:
    """The signature header value the provider sends with a receipt body (hex HMAC-SHA256)."""
    return "sha256=" + hmac.new(_secret(secret), body, hashlib.sha256).hexdigest()


def parse_receipt(body: bytes | str, signature: str | None, secret: SecretStr | str | bytes) -> Receipt:
    """A delivery receipt whose HMAC signature matches; raises InvalidSignatureError or ValueError otherwise."""
    raw = body.encode() if isinstance(body, str) else body
    given = (signature or "").strip()
    if not given or not hmac.compare_digest(given.removeprefix("sha256=").lower(),
                                            receipt_signature(raw, secret).removeprefix("sha256=")):
        raise InvalidSignatureError("SMS receipt signature does not match")
    return read_receipt(raw)


def read_receipt(raw: bytes) -> Receipt:
    """The receipt in a JSON body whose signature was already checked; ValueError when it is not one."""
    try:
        data = json.loads(raw)
        provider_ref, state = data["id"], data["status"]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ValueError("SMS receipt is not a JSON object with id and status") from exc
    if isinstance(provider_ref, bool) or not isinstance(provider_ref, str | int) or not isinstance(state, str):
        raise ValueError("SMS receipt id must be a string or number and status a string")
    provider_ref, state = str(provider_ref), state.lower()
    if not provider_ref.strip():
        raise ValueError("SMS receipt id is empty")
    reference = data.get("reference")
    detail = str(data.get("error") or data.get("detail") or state)
    return Receipt(provider_ref=provider_ref, reference=str(reference) if reference is not None else None,
                   status=_RECEIPT_STATUS.get(state, SENT), detail=detail)


def _secret(secret: SecretStr | str | bytes) -> bytes:
    return secret_bytes(secret, "POSTROOM_SMS_WEBHOOK_SECRET")
