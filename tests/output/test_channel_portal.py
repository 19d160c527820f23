"""Portal channel and the channel registry."""

from __future__ import annotations

import pytest

from output.channels import (
    Channel,
    ChannelNotConfiguredError,
    Outgoing,
    Recipient,
    UnknownChannelError,
    channel_names,
    get_channel,
)
from repository.config import Settings


def _letter() -> Outgoing:
    return Outgoing(
        letter_id="L9", channel="portal", idempotency_key="L9:portal:1",
        recipient=Recipient(name="Ada", email=None, mobile=None, address={}, locale="en"),
        category="billing", subject="Statement", pdf=b"%PDF", portal_url="https://portal.test/l/L9", sensitive=True,
        text_body="", html_body="")


def test_portal_send_is_delivered_at_once() -> None:
    channel = get_channel("portal", Settings())
    result = channel.send(_letter())
    assert (result.status, result.provider_ref, result.retryable) == ("delivered", "portal:L9", False)
    assert channel.check("portal:L9") is None


def test_registry_builds_every_channel_from_settings() -> None:
    settings = Settings(smtp_host="127.0.0.1", sms_url="http://127.0.0.1:1/sms",
                        ipp_printer_uri="ipp://127.0.0.1:631/ipp/print")
    assert channel_names() == ["email", "portal", "print", "sms"]
    for name in channel_names():
        channel = get_channel(name, settings)
        assert isinstance(channel, Channel) and channel.name == name


@pytest.mark.parametrize("name", ["email", "sms", "print"])
def test_unconfigured_channels_say_which_setting_is_missing(name) -> None:  # noqa: ANN001
    with pytest.raises(ChannelNotConfiguredError) as caught:
        get_channel(name, Settings(smtp_host=None, sms_url=None, ipp_printer_uri=None))
    assert "POSTROOM_" in str(caught.value)


def test_unknown_channel() -> None:
    with pytest.raises(UnknownChannelError):
        get_channel("pigeon", Settings())
