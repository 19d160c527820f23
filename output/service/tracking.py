"""Links in outgoing messages: the portal link, the open-tracking pixel and signed click redirects, and
recording the opens and clicks they report.

A click token signs its target: it is a tracking token over the letter id and "<channel>|<url>", so the
redirect endpoint only ever sends a browser to a URL Postroom itself put in a message (no open redirect).
"""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from output.channels import tracking_token, verify_tracking_token
from output.models import CLICKED, OPENED, DeliveryEvent, Dispatch, Letter
from output.service.letters import add_event
from repository.config import Settings

_SEP = "|"


def portal_url(settings: Settings, letter_id: str) -> str:
    """Where the customer reads the letter in the portal."""
    return f"{settings.public_base_url.rstrip('/')}/portal/letters/{letter_id}"


def open_pixel_url(settings: Settings, letter_id: str, channel: str) -> str:
    """The open-tracking pixel of a letter's message."""
    token = tracking_token(letter_id, channel, settings.tracking_secret)
    return f"{settings.public_base_url.rstrip('/')}/t/o/{token}.gif"


def click_url(settings: Settings, letter_id: str, channel: str, url: str) -> str:
    """A click-tracking redirect to `url`, which the token signs."""
    token = tracking_token(letter_id, f"{channel}{_SEP}{url}", settings.tracking_secret)
    return f"{settings.public_base_url.rstrip('/')}/t/c/{token}?u={quote(url, safe='')}"


def verify_open(settings: Settings, token: str) -> tuple[str, str]:
    """(letter_id, channel) of a pixel token; InvalidSignatureError when forged."""
    letter_id, channel = verify_tracking_token(token, settings.tracking_secret)
    return letter_id, channel.split(_SEP, 1)[0]


def verify_click(settings: Settings, token: str, url: str) -> tuple[str, str] | None:
    """(letter_id, channel) when the token signs exactly `url`; None when it signs another; InvalidSignatureError
    when forged."""
    letter_id, signed = verify_tracking_token(token, settings.tracking_secret)
    channel, sep, target = signed.partition(_SEP)
    if not sep or target != url:
        return None
    return letter_id, channel


def record_tracking(session: Session, *, letter_id: str, channel: str, kind: str, detail: str = "") -> bool:
    """Record an open or click of a letter's message (the first open only); False when there is no such row."""
    if kind not in (OPENED, CLICKED):
        raise ValueError(f"not a tracking kind: {kind}")
    row = session.execute(select(Dispatch).where(Dispatch.letter_id == letter_id, Dispatch.channel == channel)
                          ).scalar_one_or_none()
    if row is None:
        return False
    if kind == OPENED:
        seen = session.execute(select(DeliveryEvent.id).where(DeliveryEvent.dispatch_id == row.id,
                                                              DeliveryEvent.kind == OPENED).limit(1)).first()
        if seen is not None:
            return True
    add_event(session, row, session.get(Letter, letter_id), kind, detail)
    return True
