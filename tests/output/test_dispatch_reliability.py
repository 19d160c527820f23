"""Dispatch reliability with the SMTP relay down, on SQLite and PostgreSQL: the real dispatcher (dispatch_due) on a
clock the test moves, a real SMTP server (aiosmtpd) that is absent, then refuses with 421, then accepts.

The LibreOffice-killed-mid-conversion case is tests/output/test_compose_pool.py::
test_a_libreoffice_killed_mid_conversion_is_replaced_and_the_letter_retried.
"""

from __future__ import annotations

import datetime as dt
import email

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from output import service as output
from output.models import Dispatch, Letter
from output.service import dispatch
from repository.config import get_settings
from repository.db import transaction
from tests.output.letters_support import Recorder, approved_template, customer, free_port, uno_pool  # noqa: F401

pytestmark = [pytest.mark.usefixtures("repo", "uno_pool"), pytest.mark.libreoffice, pytest.mark.smtp]

BACKOFF = 30


class Clock:
    """The dispatcher's clock: real time until the test moves it."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


class FlakyRelay(Recorder):
    """An SMTP server that answers 421 to every message while `down`, then accepts and records them."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.refused = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        if self.down:
            self.refused += 1
            return "421 4.3.2 Service not available, try again later"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def relay_port(monkeypatch) -> int:  # noqa: ANN001
    """A loopback port nothing listens on yet, configured as the SMTP relay; backoff 30 s doubling."""
    port = free_port()
    monkeypatch.setenv("POSTROOM_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("POSTROOM_SMTP_PORT", str(port))
    monkeypatch.setenv("POSTROOM_SMTP_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("POSTROOM_DISPATCH_BACKOFF_SECONDS", str(BACKOFF))
    get_settings.cache_clear()
    return port


@pytest.fixture
def email_letter(make_user) -> str:  # noqa: ANN001
    """A letter to a customer who wants statements by email (and has a postal address)."""
    author, approver, admin = make_user("alice", "author"), make_user("bob", "approver"), make_user("root", "admin")
    approved_template(author, approver)
    customer_id = customer(admin, "C-1", email="ada@example.com", channel_preferences={"statement": "email"})
    with transaction() as s:
        return output.create_letter(s, actor=author.user, template="statement", customer_id=customer_id,
                                    data={"balance": 42}).id


@pytest.fixture
def clock(monkeypatch, email_letter) -> Clock:  # noqa: ANN001
    """The dispatcher's clock, starting just after the letter was queued."""
    moved = Clock()
    monkeypatch.setattr(dispatch, "utcnow", moved)
    return moved


def _rows(letter_id: str) -> dict[str, Dispatch]:
    with transaction(readonly=True) as s:
        return {r.channel: r for r in s.execute(select(Dispatch).where(Dispatch.letter_id == letter_id)).scalars()}


def _status(letter_id: str) -> str:
    with transaction(readonly=True) as s:
        return s.get(Letter, letter_id).status


def _attempt(clock: Clock, letter_id: str) -> Dispatch:
    """Move the clock to the email row's next attempt and run the dispatcher; nothing is due a second earlier."""
    due = _rows(letter_id)["email"].next_attempt_at
    clock.now = due - dt.timedelta(seconds=1)
    assert output.dispatch_due() == 0
    clock.now = due
    assert output.dispatch_due() == 1
    return _rows(letter_id)["email"]


def test_smtp_down_backs_off_then_falls_back_and_the_letter_is_not_lost(email_letter, clock, relay_port,  # noqa: ANN001
                                                                        monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("POSTROOM_DISPATCH_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("POSTROOM_FALLBACK", "email>portal")
    get_settings.cache_clear()
    delays = []
    for attempt in (1, 2):
        row = _attempt(clock, email_letter)
        assert (row.state, row.attempts) == ("queued", attempt)
        assert "SMTP connection failed" in row.last_error
        delays.append((row.next_attempt_at - clock.now).total_seconds())
        assert _status(email_letter) == "dispatching"
    assert delays == [BACKOFF, 2 * BACKOFF]  # exponential backoff
    row = _attempt(clock, email_letter)  # the last attempt
    rows = _rows(email_letter)
    assert (row.state, row.attempts) == ("failed", 3) and "after 3 attempts" in row.last_error
    assert (rows["portal"].state, rows["portal"].fallback_of) == ("queued", row.id)
    assert output.dispatch_due() == 1  # the fallback is due at once
    rows = _rows(email_letter)
    assert rows["portal"].state == "delivered" and _status(email_letter) == "done"
    clock.now += dt.timedelta(days=1)
    assert output.dispatch_due() == 0  # nothing left: the email is not retried after its fallback
    assert _rows(email_letter)["email"].attempts == 3


def test_smtp_back_before_the_last_attempt_delivers_the_email_exactly_once(email_letter, clock,  # noqa: ANN001
                                                                           relay_port, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("POSTROOM_DISPATCH_MAX_ATTEMPTS", "5")
    get_settings.cache_clear()
    first = _attempt(clock, email_letter)  # nothing listens
    assert (first.state, first.attempts) == ("queued", 1) and "SMTP connection failed" in first.last_error
    relay = FlakyRelay()
    controller = Controller(relay, hostname="127.0.0.1", port=relay_port)
    controller.start()  # the relay comes back, but refuses mail for now
    try:
        second = _attempt(clock, email_letter)
        assert (second.state, second.attempts, relay.refused) == ("queued", 2, 1)
        assert second.last_error.startswith("SMTP 421")
        assert second.next_attempt_at > first.next_attempt_at
        relay.down = False
        third = _attempt(clock, email_letter)
        assert (third.state, third.attempts) == ("sent", 3)
        for _ in range(3):  # much later: nothing is sent again
            clock.now += dt.timedelta(hours=12)
            assert output.dispatch_due() == 0
    finally:
        controller.stop()
    assert len(relay.messages) == 1
    assert email.message_from_bytes(relay.messages[0][2])["Message-ID"] == third.provider_ref
    assert list(_rows(email_letter)) == ["email"]  # no fallback
    assert _status(email_letter) == "done"
