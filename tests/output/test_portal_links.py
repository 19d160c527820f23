"""A message that points the customer to the portal leads to the letter, on SQLite and PostgreSQL: a sensitive
email (a link, no attachment) and an SMS bring a `portal` ledger row with them, whether the channel came from a
preference, an override or a fallback, and the customer's portal API then lists and serves the letter."""

from __future__ import annotations

import email
import email.policy

import pytest
from sqlalchemy import select

from output import service as output
from output.models import Dispatch
from repository.config import get_settings
from repository.db import transaction
from tests.output.letters_support import (  # noqa: F401
    approved_template,
    customer,
    pdf_of,
    quick_letter,
    sms_provider,
    smtp,
)

PORTAL = "/api/v1/portal"
PASSWORD = "a-long-portal-password"
PDF = pdf_of(1, "archived as sent")
MOBILE = "+447911123456"


@pytest.fixture
def people(client, make_user):  # noqa: ANN001, ANN201
    """An author, an approver, an admin and a help-desk user; an approved `statement` template."""
    found = {"author": make_user("alice", "author"), "approver": make_user("bob", "approver"),
             "admin": make_user("root", "admin"), "helpdesk": make_user("harry", "helpdesk")}
    approved_template(found["author"], found["approver"])
    return found


@pytest.fixture
def sensitive(monkeypatch) -> None:  # noqa: ANN001
    """Statements are sensitive: emails carry a portal link instead of the PDF."""
    monkeypatch.setenv("POSTROOM_SENSITIVE_CATEGORIES", "statement")
    get_settings.cache_clear()


def _portal_customer(client, people, **fields) -> tuple[str, dict[str, str]]:  # noqa: ANN001, ANN003
    """A customer with a portal account, signed in: its id and the portal Authorization header."""
    customer_id = customer(people["admin"], "C-1", email="ada@example.com", **fields)
    invited = client.post(f"/api/v1/customers/{customer_id}/portal-account", headers=people["helpdesk"].headers)
    assert invited.status_code == 201, invited.text
    activated = client.post(f"{PORTAL}/activate", json={"code": invited.json()["activation_code"],
                                                        "password": PASSWORD})
    assert activated.status_code == 200, activated.text
    token = client.post(f"{PORTAL}/auth/token", data={"username": "ada@example.com", "password": PASSWORD})
    assert token.status_code == 200, token.text
    return customer_id, {"Authorization": f"Bearer {token.json()['access_token']}"}


def _rows(letter_id: str) -> dict[str, Dispatch]:
    with transaction(readonly=True) as s:
        return {r.channel: r for r in s.execute(select(Dispatch).where(Dispatch.letter_id == letter_id)).scalars()}


def _assert_in_portal(client, headers: dict[str, str], letter_id: str) -> None:  # noqa: ANN001
    inbox = client.get(f"{PORTAL}/letters", headers=headers)
    assert inbox.status_code == 200, inbox.text
    assert [item["id"] for item in inbox.json()["items"]] == [letter_id]
    opened = client.get(f"{PORTAL}/letters/{letter_id}/pdf", headers=headers)
    assert opened.status_code == 200 and opened.content == PDF


@pytest.mark.smtp
@pytest.mark.usefixtures("sensitive")
def test_a_sensitive_email_by_preference_links_to_a_letter_in_the_portal(client, people, smtp) -> None:  # noqa: ANN001, F811
    customer_id, headers = _portal_customer(client, people, channel_preferences={"statement": "email"})
    letter_id = quick_letter(people["author"], customer_id, PDF)
    rows = _rows(letter_id)
    assert sorted(rows) == ["email", "portal"]
    assert rows["portal"].reason == "the email message links to the portal inbox"
    output.dispatch_due()
    [(_from, _to, raw)] = smtp.messages
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert list(message.iter_attachments()) == []
    assert output.portal_url(get_settings(), letter_id) in message.get_body(("plain",)).get_content()
    _assert_in_portal(client, headers, letter_id)


def test_an_sms_by_override_links_to_a_letter_in_the_portal(client, people, sms_provider) -> None:  # noqa: ANN001, F811
    customer_id, headers = _portal_customer(client, people, mobile=MOBILE)
    letter_id = quick_letter(people["author"], customer_id, PDF, channel="sms")
    assert sorted(_rows(letter_id)) == ["portal", "sms"]
    output.dispatch_due()
    [request] = sms_provider.requests
    assert output.portal_url(get_settings(), letter_id) in request["body"]["text"]
    _assert_in_portal(client, headers, letter_id)


@pytest.mark.smtp
def test_an_sms_fallback_after_a_bounce_brings_the_portal_row(client, people, smtp, sms_provider,  # noqa: ANN001, F811
                                                              monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("POSTROOM_FALLBACK", "email>sms")
    get_settings.cache_clear()
    customer_id, headers = _portal_customer(client, people, mobile=MOBILE, channel_preferences={"statement": "email"})
    letter_id = quick_letter(people["author"], customer_id, PDF)
    assert sorted(_rows(letter_id)) == ["email"]  # an email with the PDF attached needs no portal
    output.dispatch_due()
    with transaction() as s:
        output.record_bounce(s, letter_id=letter_id, detail="550 5.1.1 no such user")
    rows = _rows(letter_id)
    assert (rows["sms"].state, rows["portal"].state) == ("queued", "queued")
    assert rows["portal"].fallback_of == rows["email"].id
    output.dispatch_due()
    assert len(sms_provider.requests) == 1
    _assert_in_portal(client, headers, letter_id)


def test_a_suppressed_sms_does_not_publish_the_letter_to_the_portal(client, people) -> None:  # noqa: ANN001
    customer_id, headers = _portal_customer(client, people, mobile=MOBILE)  # no marketing consent
    letter_id = quick_letter(people["author"], customer_id, PDF, channel="sms", category="marketing")
    rows = _rows(letter_id)
    assert {c: r.state for c, r in rows.items()} == {"sms": "suppressed", "portal": "suppressed"}
    assert output.dispatch_due() == 0
    assert client.get(f"{PORTAL}/letters", headers=headers).json()["items"] == []
