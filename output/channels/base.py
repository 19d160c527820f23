"""The channel plugin interface: what the dispatcher hands a channel and what it gets back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

SENT = "sent"
DELIVERED = "delivered"
FAILED = "failed"
TAKEN_OVER = "taken_over"  # the commit point said no: another dispatcher owns this send; record nothing


@dataclass(frozen=True)
class Recipient:
    """Who a letter goes to, as far as the channels need to know."""

    name: str
    email: str | None
    mobile: str | None  # E.164
    address: dict
    locale: str


@dataclass(frozen=True)
class Outgoing:
    """One letter on one channel, fully rendered by the caller; channels do not template."""

    letter_id: str
    channel: str
    idempotency_key: str  # unique per (letter, channel, attempt-chain)
    recipient: Recipient
    category: str
    subject: str
    pdf: bytes | None  # the archived PDF (email attachment, print)
    portal_url: str | None  # link to the letter in the customer portal (sensitive categories, SMS)
    sensitive: bool  # email carries the link instead of the PDF
    text_body: str
    html_body: str
    message_source: str = ""  # what wrote the subject and bodies (a message template's revision, or built-in)
    # Called by a channel just before the step it cannot take back (SMTP's end of data), with the message's id;
    # False means the dispatcher no longer owns the send: abort it. See output/service/dispatch.py.
    commit_point: Callable[[str], bool] | None = None


@dataclass(frozen=True)
class SendResult:
    """What happened to one send or poll: `sent`, `delivered` or `failed` (retryable or not)."""

    status: str
    provider_ref: str | None
    detail: str
    retryable: bool


@runtime_checkable
class Channel(Protocol):
    """A dispatch channel: submit a letter, and poll a pending job where the provider works asynchronously."""

    name: str

    def send(self, message: Outgoing) -> SendResult:
        """Submit one letter; never raises for provider trouble, it answers a failed result instead."""
        ...

    def check(self, provider_ref: str) -> SendResult | None:
        """Poll a pending job; None while it is still pending."""
        ...


class ChannelError(Exception):
    """Base of the errors the channel package raises for misuse (not for provider trouble)."""


class UnknownChannelError(ChannelError):
    """No channel is registered under this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown channel {name!r}")
        self.name = name


class ChannelNotConfiguredError(ChannelError):
    """A channel's required settings are missing."""

    def __init__(self, name: str, setting: str) -> None:
        super().__init__(f"channel {name!r} needs POSTROOM_{setting.upper()}")
        self.name = name
        self.setting = setting


class InvalidSignatureError(ChannelError):
    """A webhook or tracking token does not carry a valid signature."""


def failed(detail: str, *, retryable: bool, provider_ref: str | None = None) -> SendResult:
    """A failed result."""
    return SendResult(status=FAILED, provider_ref=provider_ref, detail=detail, retryable=retryable)
