"""Dispatch channels: one plugin per way a letter leaves Postroom (email, SMS, print device, portal).

The channels know nothing of the database: the dispatcher hands them an `Outgoing` and records the
`SendResult` in its ledger. `get_channel(name, settings)` builds one from the POSTROOM_* settings.
"""

from __future__ import annotations

from collections.abc import Callable

from output.channels.base import (
    DELIVERED,
    FAILED,
    SENT,
    Channel,
    ChannelError,
    ChannelNotConfiguredError,
    InvalidSignatureError,
    Outgoing,
    Recipient,
    SendResult,
    UnknownChannelError,
)
from output.channels.tracking import tracking_token, verify_tracking_token
from repository.config import Settings


def _email(settings: Settings) -> Channel:
    from output.channels._email import EmailChannel

    return EmailChannel.from_settings(settings)


def _sms(settings: Settings) -> Channel:
    from output.channels._sms import SmsChannel

    return SmsChannel.from_settings(settings)


def _print(settings: Settings) -> Channel:
    from output.channels._ipp import IppChannel

    return IppChannel.from_settings(settings)


def _portal(settings: Settings) -> Channel:
    from output.channels._portal import PortalChannel

    return PortalChannel()


_FACTORIES: dict[str, Callable[[Settings], Channel]] = {
    "email": _email, "sms": _sms, "print": _print, "portal": _portal,
}


def get_channel(name: str, settings: Settings) -> Channel:
    """The channel registered under `name`, configured from the settings."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise UnknownChannelError(name) from None
    return factory(settings)


def channel_names() -> list[str]:
    """The names of every registered channel."""
    return sorted(_FACTORIES)


__all__ = [
    "DELIVERED", "FAILED", "SENT", "Channel", "ChannelError", "ChannelNotConfiguredError", "InvalidSignatureError",
    "Outgoing", "Recipient", "SendResult", "UnknownChannelError", "channel_names", "get_channel", "tracking_token",
    "verify_tracking_token",
]
