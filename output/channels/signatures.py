"""Signed webhooks: the `Postroom-Signature: t=<unix seconds>,v1=<hex>` header, like Stripe's.

v1 is HMAC-SHA256 over "<t>." followed by the raw request body, keyed with the webhook's secret. The timestamp is
inside the signed payload, so a captured request cannot be replayed after the tolerance window; several v1
entries are accepted (a sender rotating its secret signs with both).
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

from output.channels.base import InvalidSignatureError

HEADER = "Postroom-Signature"
TOLERANCE_SECONDS = 300


def secret_bytes(secret: SecretStr | str | bytes, setting: str = "the webhook's secret") -> bytes:
    """The key bytes of a secret; ValueError naming `setting` when it is empty."""
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    key = value.encode() if isinstance(value, str) else value
    if not key:
        raise ValueError(f"a webhook secret is required ({setting})")
    return key


def _mac(key: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign_webhook(body: bytes, secret: SecretStr | str | bytes, *, timestamp: int) -> str:
    """The signature header value for a body sent at `timestamp` (unix seconds)."""
    return f"t={timestamp},v1={_mac(secret_bytes(secret), timestamp, body)}"


def verify_webhook(body: bytes, header: str | None, secret: SecretStr | str | bytes, *, now: float,
                   tolerance: int = TOLERANCE_SECONDS) -> int:
    """The signed timestamp when `header` signs `body` within `tolerance` seconds of `now`; raises
    InvalidSignatureError otherwise (ValueError when no secret is configured)."""
    key = secret_bytes(secret)
    timestamp: int | None = None
    given: list[str] = []
    for item in (header or "").split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if name == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1":
            given.append(value.strip().lower())
    if timestamp is None or not given:
        raise InvalidSignatureError(f"the {HEADER} header must be t=<unix seconds>,v1=<hex HMAC-SHA256>")
    expected = _mac(key, timestamp, body)
    # Compare with every candidate, so the time taken does not say which one (or whether any) came close.
    matched = [hmac.compare_digest(candidate.encode(), expected.encode()) for candidate in given]
    if not any(matched):
        raise InvalidSignatureError("the webhook signature does not match")
    if abs(now - timestamp) > tolerance:
        raise InvalidSignatureError(f"the webhook signature has expired: its timestamp is more than {tolerance} s "
                                    "from now")
    return timestamp
