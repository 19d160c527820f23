"""Signed tokens for open-tracking pixels and click-tracking redirects, so the API can trust them later."""

from __future__ import annotations

import base64
import hashlib
import hmac

from pydantic import SecretStr

from output.channels.base import InvalidSignatureError

_MAC_BYTES = 16  # 128 bits is plenty for a URL token and keeps the link short


def _key(secret: str | bytes | SecretStr) -> bytes:
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    key = secret.encode() if isinstance(secret, str) else secret
    if not key:
        raise ValueError("a tracking secret is required (POSTROOM_TRACKING_SECRET)")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, b"postroom-tracking\x00" + payload, hashlib.sha256).digest()[:_MAC_BYTES]


def tracking_token(letter_id: str, channel: str, secret: str | bytes | SecretStr) -> str:
    """A URL-safe token naming a letter and channel, signed with HMAC-SHA256."""
    if "\x00" in letter_id or "\x00" in channel:
        raise ValueError("letter id and channel may not contain NUL")
    payload = f"{letter_id}\x00{channel}".encode()
    return f"{_b64(payload)}.{_b64(_mac(_key(secret), payload))}"


def verify_tracking_token(token: str, secret: str | bytes | SecretStr) -> tuple[str, str]:
    """The (letter_id, channel) a token names; raises InvalidSignatureError when forged or malformed."""
    try:
        body, mac = token.split(".", 1)
        payload = _unb64(body)
        given = _unb64(mac)
        letter_id, channel = payload.decode().split("\x00", 1)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidSignatureError("malformed tracking token") from exc
    if not hmac.compare_digest(given, _mac(_key(secret), payload)):
        raise InvalidSignatureError("tracking token signature does not match")
    return letter_id, channel
