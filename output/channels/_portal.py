"""The portal channel: the letter is in the customer's portal inbox as soon as the ledger records it."""

from __future__ import annotations

from output.channels.base import DELIVERED, Outgoing, SendResult


class PortalChannel:
    """Delivers by publishing: the portal inbox lists the letters the ledger marks delivered on this channel."""

    name = "portal"

    def send(self, message: Outgoing) -> SendResult:
        """Delivered at once; the ledger row is what makes the letter visible in the portal inbox."""
        return SendResult(status=DELIVERED, provider_ref=f"portal:{message.letter_id}",
                          detail="available in the customer's portal inbox", retryable=False)

    def check(self, provider_ref: str) -> SendResult | None:
        """Nothing to poll: portal sends are final when made."""
        return None
