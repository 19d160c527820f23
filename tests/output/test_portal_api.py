"""The customer portal through the HTTP API on SQLite and PostgreSQL: staff invite a customer, the customer
activates the account, signs in and reads the letters published to the portal (composed by a real LibreOffice);
permissions in pairs, staff and customer tokens kept apart, expired and used codes, lockout, disabling, paging."""

from __future__ import annotations

import datetime as dt
import json

import jwt
import pytest
from sqlalchemy import select

from output import service as output
from output.models import Letter
from repository.config import get_settings
from repository.db import transaction
from repository.models import AuditEntry, Document, OutboxEvent
from repository.portal_models import PortalAccount
from repository.types import utcnow
from tests.api.helpers import assert_problem
from tests.output.letters_support import approved_template, customer, uno_pool  # noqa: F401

CUSTOMERS = "/api/v1/customers"
PORTAL = "/api/v1/portal"
PASSWORD = "a-long-portal-password"


@pytest.fixture
def people(client, make_user):  # noqa: ANN001, ANN201
    """An author, an approver, an admin and a help-desk user."""
    return {"author": make_user("alice", "author"), "approver": make_user("bob", "approver"),
            "admin": make_user("root", "admin"), "helpdesk": make_user("harry", "helpdesk")}


def _invite(client, staff, customer_id: str, **body):  # noqa: ANN001, ANN003, ANN202
    return client.post(f"{CUSTOMERS}/{customer_id}/portal-account", json=body or None, headers=staff.headers)


def _login(client, email: str, password: str = PASSWORD):  # noqa: ANN001, ANN202
    return client.post(f"{PORTAL}/auth/token", data={"username": email, "password": password})


def _portal_customer(client, people, ref: str, email: str) -> tuple[str, dict[str, str]]:  # noqa: ANN001
    """A customer invited, activated and signed in: its id and the portal Authorization header."""
    customer_id = customer(people["admin"], ref, email=email)
    invited = _invite(client, people["helpdesk"], customer_id)
    assert invited.status_code == 201, invited.text
    activated = client.post(f"{PORTAL}/activate", json={"code": invited.json()["activation_code"],
                                                        "password": PASSWORD})
    assert activated.status_code == 200, activated.text
    signed_in = _login(client, email)
    assert signed_in.status_code == 200, signed_in.text
    return customer_id, {"Authorization": f"Bearer {signed_in.json()['access_token']}"}


def _letter(people, customer_id: str, channel: str = "portal") -> str:  # noqa: ANN001
    with transaction() as s:
        return output.create_letter(s, actor=people["author"].user, template="statement", customer_id=customer_id,
                                    data={"balance": 42}, channel=channel).id


def _portal_rows(client, people) -> list[dict]:  # noqa: ANN001
    """Audit rows of portal accounts (as an admin sees them)."""
    with transaction(readonly=True) as s:
        return [{"action": e.action, "actor": e.actor, "details": e.details} for e in
                s.execute(select(AuditEntry).where(AuditEntry.object_type == "portal_account")
                          .order_by(AuditEntry.seq)).scalars()]


@pytest.mark.libreoffice
@pytest.mark.usefixtures("uno_pool")
def test_invite_activate_sign_in_list_and_read_a_portal_letter(client, people) -> None:  # noqa: ANN001
    approved_template(people["author"], people["approver"])
    customer_id = customer(people["admin"], "C-1", email="Ada@Example.com")
    invited = _invite(client, people["helpdesk"], customer_id)
    assert invited.status_code == 201, invited.text
    body = invited.json()
    code = body["activation_code"]
    assert (body["email"], body["status"], body["customer_id"]) == ("ada@example.com", "invited", customer_id)
    assert body["activation_url"].endswith(f"/portal/activate#code={code}") and len(code) >= 32
    assert invited.headers["Cache-Control"].startswith("no-store")
    assert _login(client, "ada@example.com").status_code == 401  # no password until activated
    activated = client.post(f"{PORTAL}/activate", json={"code": code, "password": PASSWORD})
    assert activated.status_code == 200 and activated.json() == {"email": "ada@example.com", "status": "active"}
    assert_problem(client.post(f"{PORTAL}/activate", json={"code": code, "password": PASSWORD}), 422, "used")
    signed_in = _login(client, "ADA@example.com")  # the login email is not case-sensitive
    assert signed_in.status_code == 200, signed_in.text
    token = signed_in.json()
    assert token["expires_in"] == get_settings().portal_token_lifetime_minutes * 60
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert (claims["typ"], claims["cid"]) == ("portal", customer_id)
    headers = {"Authorization": f"Bearer {token['access_token']}"}

    letter_id = _letter(people, customer_id)
    assert client.get(f"{PORTAL}/letters", headers=headers).json() == {"items": [], "next_cursor": None}
    assert_problem(client.get(f"{PORTAL}/letters/{letter_id}", headers=headers), 404)  # queued, not yet published
    output.dispatch_due()
    inbox = client.get(f"{PORTAL}/letters", headers=headers)
    assert inbox.status_code == 200, inbox.text
    [item] = inbox.json()["items"]
    with transaction(readonly=True) as s:
        letter = s.get(Letter, letter_id)
        reference = letter.reference
    assert (item["id"], item["reference"], item["title"], item["template"]) == (
        letter_id, reference, "Statement", "statement")
    assert (item["category"], item["pages"], item["read"]) == ("statement", 1, False)
    assert item["published_at"] is not None
    assert client.get(f"{PORTAL}/letters/{letter_id}", headers=headers).json() == item

    pdf = client.get(f"{PORTAL}/letters/{letter_id}/pdf", headers=headers)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    archived = client.get(f"/api/v1/letters/{letter_id}/pdf", headers=people["helpdesk"].headers)
    assert pdf.content == archived.content and pdf.content.startswith(b"%PDF-")
    assert client.get(f"{PORTAL}/letters/{letter_id}/pdf", headers=headers).status_code == 200
    assert client.get(f"{PORTAL}/letters/{letter_id}", headers=headers).json()["read"] is True
    staff_view = client.get(f"/api/v1/letters/{letter_id}", headers=people["helpdesk"].headers).json()
    kinds = [(e["channel"], e["kind"]) for e in staff_view["events"]]
    assert kinds == [("portal", "queued"), ("portal", "delivered"), ("portal", "opened")]  # opened once

    actions = [row["action"] for row in _portal_rows(client, people)]
    assert actions == ["portal_account.invited", "portal_account.login_failed", "portal_account.activated",
                       "portal_account.login"]
    with transaction(readonly=True) as s:
        outbox = [e.name for e in s.execute(select(OutboxEvent).order_by(OutboxEvent.id)).scalars()]
    assert "portal_account.invited" in outbox and "portal_account.activated" in outbox


def test_secrets_never_reach_the_audit_trail_or_the_outbox(client, people) -> None:  # noqa: ANN001
    customer_id = customer(people["admin"], "C-1", email="ada@example.com")
    code = _invite(client, people["helpdesk"], customer_id).json()["activation_code"]
    client.post(f"{PORTAL}/activate", json={"code": code, "password": PASSWORD})
    token = _login(client, "ada@example.com").json()["access_token"]
    _login(client, "ada@example.com", "wrong-password-1")
    with transaction(readonly=True) as s:
        stored = json.dumps([[e.actor, e.details] for e in s.execute(select(AuditEntry)).scalars()]
                            + [e.payload for e in s.execute(select(OutboxEvent)).scalars()])
        account = s.execute(select(PortalAccount)).scalar_one()
    for secret in (code, PASSWORD, "wrong-password-1", token):
        assert secret not in stored
    assert account.password_hash.startswith("$argon2") and account.activation_code_sha256 is None


@pytest.mark.libreoffice
@pytest.mark.usefixtures("uno_pool")
def test_a_customer_sees_only_its_own_portal_letters(client, people) -> None:  # noqa: ANN001
    approved_template(people["author"], people["approver"])
    ada, ada_headers = _portal_customer(client, people, "C-1", "ada@example.com")
    bob, bob_headers = _portal_customer(client, people, "C-2", "bob@example.com")
    ada_letter = _letter(people, ada)
    paper_letter = _letter(people, ada, channel="print")  # never published to the portal
    output.dispatch_due()
    assert client.get(f"{PORTAL}/letters/{ada_letter}", headers=ada_headers).status_code == 200
    assert client.get(f"{PORTAL}/letters/{ada_letter}/pdf", headers=ada_headers).status_code == 200
    assert_problem(client.get(f"{PORTAL}/letters/{ada_letter}", headers=bob_headers), 404)
    assert_problem(client.get(f"{PORTAL}/letters/{ada_letter}/pdf", headers=bob_headers), 404)
    assert client.get(f"{PORTAL}/letters", headers=bob_headers).json()["items"] == []
    assert_problem(client.get(f"{PORTAL}/letters/{paper_letter}", headers=ada_headers), 404)
    assert_problem(client.get(f"{PORTAL}/letters/{paper_letter}/pdf", headers=ada_headers), 404)
    assert [i["id"] for i in client.get(f"{PORTAL}/letters", headers=ada_headers).json()["items"]] == [ada_letter]
    # A staff token is no portal token, and a portal token no staff token.
    staff = people["admin"].headers
    assert_problem(client.get(f"{PORTAL}/letters", headers=staff), 401)
    assert_problem(client.get(f"{PORTAL}/letters/{ada_letter}/pdf", headers=staff), 401)
    assert_problem(client.get("/api/v1/documents", headers=ada_headers), 401)
    assert_problem(client.get(f"/api/v1/letters/{ada_letter}", headers=ada_headers), 401)
    assert_problem(client.get(f"{CUSTOMERS}/{ada}", headers=ada_headers), 401)
    assert client.get("/api/v1/documents", headers=staff).status_code == 200
    assert_problem(client.get(f"{PORTAL}/letters"), 401)
    # An erasure request that has to keep the letter restricts it to records managers: gone from the portal too.
    with transaction() as s:
        s.get(Document, s.get(Letter, ada_letter).document_id).restricted = True
    assert client.get(f"{PORTAL}/letters", headers=ada_headers).json()["items"] == []
    assert_problem(client.get(f"{PORTAL}/letters/{ada_letter}", headers=ada_headers), 404)
    assert_problem(client.get(f"{PORTAL}/letters/{ada_letter}/pdf", headers=ada_headers), 404)


def test_only_admins_and_the_help_desk_invite_and_disable(client, people) -> None:  # noqa: ANN001
    customer_id = customer(people["admin"], "C-1", email="ada@example.com")
    assert_problem(_invite(client, people["author"], customer_id), 403)
    assert _invite(client, people["helpdesk"], customer_id).status_code == 201
    url = f"{CUSTOMERS}/{customer_id}/portal-account"
    assert_problem(client.delete(url, headers=people["author"].headers), 403)
    assert client.delete(url, headers=people["admin"].headers).status_code == 204
    assert client.get(url, headers=people["author"].headers).json()["status"] == "disabled"


def test_invitations_check_the_customer_and_the_email(client, people) -> None:  # noqa: ANN001
    staff = people["helpdesk"]
    assert_problem(_invite(client, staff, "no-such-customer"), 404)
    no_email = customer(people["admin"], "C-1")
    assert_problem(_invite(client, staff, no_email), 422, "email")
    assert_problem(_invite(client, staff, no_email, email="not an address"), 422, "email")
    assert_problem(client.post(f"{CUSTOMERS}/{no_email}/portal-account", json={"email": "a@b.example", "x": 1},
                               headers=staff.headers), 422)
    assert _invite(client, staff, no_email, email="Ada@Example.com").json()["email"] == "ada@example.com"
    other = customer(people["admin"], "C-2", email="ADA@example.com")
    assert_problem(_invite(client, staff, other), 409, "ada@example.com")  # the same login, whatever its case
    assert_problem(client.get(f"{CUSTOMERS}/{other}/portal-account", headers=staff.headers), 404)
    with transaction(readonly=True) as s:
        assert len(s.execute(select(PortalAccount)).scalars().all()) == 1


def test_expired_used_and_replaced_activation_codes_do_not_work(client, people, monkeypatch) -> None:  # noqa: ANN001
    customer_id = customer(people["admin"], "C-1", email="ada@example.com")
    monkeypatch.setenv("POSTROOM_PORTAL_ACTIVATION_HOURS", "0")
    get_settings.cache_clear()
    expired = _invite(client, people["helpdesk"], customer_id).json()["activation_code"]
    assert_problem(client.post(f"{PORTAL}/activate", json={"code": expired, "password": PASSWORD}), 422, "expired")
    monkeypatch.setenv("POSTROOM_PORTAL_ACTIVATION_HOURS", "72")
    get_settings.cache_clear()
    first = _invite(client, people["helpdesk"], customer_id).json()["activation_code"]
    second = _invite(client, people["helpdesk"], customer_id)
    assert second.status_code == 201
    second_code = second.json()["activation_code"]
    assert dt.datetime.fromisoformat(second.json()["activation_expires_at"]) > utcnow() + dt.timedelta(hours=71)
    for stale in (expired, first):
        assert_problem(client.post(f"{PORTAL}/activate", json={"code": stale, "password": PASSWORD}), 422)
    assert_problem(client.post(f"{PORTAL}/activate", json={"code": second_code, "password": "short"}), 422, "8")
    assert client.post(f"{PORTAL}/activate", json={"code": second_code, "password": PASSWORD}).status_code == 200
    assert_problem(client.post(f"{PORTAL}/activate", json={"code": second_code, "password": PASSWORD}), 422, "used")
    assert_problem(_invite(client, people["helpdesk"], customer_id), 409, "active")
    assert _login(client, "ada@example.com").status_code == 200


def test_failed_sign_ins_lock_the_account_for_a_while(client, people, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("POSTROOM_PORTAL_MAX_FAILED_LOGINS", "3")
    monkeypatch.setenv("POSTROOM_PORTAL_LOCKOUT_MINUTES", "10")
    get_settings.cache_clear()
    customer_id, _headers = _portal_customer(client, people, "C-1", "ada@example.com")
    unknown = assert_problem(_login(client, "nobody@example.com"), 401)
    for _ in range(2):
        wrong = assert_problem(_login(client, "ada@example.com", "wrong-password"), 401)
        assert wrong["detail"] == unknown["detail"]  # a wrong password looks like an unknown email
    locking = _login(client, "ada@example.com", "wrong-password")
    assert_problem(locking, 429, "locked")
    assert 590 <= int(locking.headers["Retry-After"]) <= 600
    assert_problem(_login(client, "ada@example.com"), 429, "locked")  # even the right password, while locked
    account = client.get(f"{CUSTOMERS}/{customer_id}/portal-account", headers=people["helpdesk"].headers).json()
    assert dt.datetime.fromisoformat(account["locked_until"]) > utcnow() + dt.timedelta(minutes=9)
    actions = [row["action"] for row in _portal_rows(client, people)]
    assert actions.count("portal_account.login_failed") == 5 and actions.count("portal_account.locked") == 1
    with transaction() as s:  # the lockout is over
        s.execute(select(PortalAccount)).scalar_one().locked_until = utcnow() - dt.timedelta(seconds=1)
    assert _login(client, "ada@example.com").status_code == 200
    assert_problem(_login(client, "ada@example.com", "wrong-password"), 401)  # the count started again
    assert_problem(_login(client, "ada@example.com", "wrong-password"), 401)
    assert _login(client, "ada@example.com").status_code == 200


def test_disabling_an_account_stops_its_tokens_at_once(client, people) -> None:  # noqa: ANN001
    customer_id, headers = _portal_customer(client, people, "C-1", "ada@example.com")
    assert client.get(f"{PORTAL}/letters", headers=headers).status_code == 200
    url = f"{CUSTOMERS}/{customer_id}/portal-account"
    assert client.delete(url, headers=people["helpdesk"].headers).status_code == 204
    assert_problem(client.get(f"{PORTAL}/letters", headers=headers), 401, "disabled")
    assert_problem(_login(client, "ada@example.com"), 401)
    assert client.delete(url, headers=people["helpdesk"].headers).status_code == 204  # disabling again is no change
    assert [r["action"] for r in _portal_rows(client, people)].count("portal_account.disabled") == 1
    # Invited and activated again: a new password, and the tokens from before stay dead.
    code = _invite(client, people["helpdesk"], customer_id).json()["activation_code"]
    assert client.post(f"{PORTAL}/activate", json={"code": code, "password": "another-password"}).status_code == 200
    assert_problem(client.get(f"{PORTAL}/letters", headers=headers), 401)
    assert_problem(_login(client, "ada@example.com"), 401)
    fresh = _login(client, "ada@example.com", "another-password").json()["access_token"]
    assert client.get(f"{PORTAL}/letters", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    assert_problem(client.delete(f"{CUSTOMERS}/{customer(people['admin'], 'C-2')}/portal-account",
                                 headers=people["helpdesk"].headers), 404)


def test_an_expired_portal_token_is_401(client, people, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("POSTROOM_PORTAL_TOKEN_LIFETIME_MINUTES", "-1")
    get_settings.cache_clear()
    _customer_id, headers = _portal_customer(client, people, "C-1", "ada@example.com")
    assert_problem(client.get(f"{PORTAL}/letters", headers=headers), 401, "expired")


@pytest.mark.libreoffice
@pytest.mark.usefixtures("uno_pool")
def test_the_inbox_pages_newest_first(client, people) -> None:  # noqa: ANN001
    approved_template(people["author"], people["approver"])
    customer_id, headers = _portal_customer(client, people, "C-1", "ada@example.com")
    letters = [_letter(people, customer_id) for _ in range(3)]
    output.dispatch_due()
    first = client.get(f"{PORTAL}/letters", params={"limit": 2}, headers=headers).json()
    assert [i["id"] for i in first["items"]] == letters[:0:-1] and first["next_cursor"]
    rest = client.get(f"{PORTAL}/letters", params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers)
    assert [i["id"] for i in rest.json()["items"]] == [letters[0]] and rest.json()["next_cursor"] is None
    assert_problem(client.get(f"{PORTAL}/letters", params={"cursor": "not-a-cursor"}, headers=headers), 422,
                   "cursor")
    assert_problem(client.get(f"{PORTAL}/letters", params={"limit": 0}, headers=headers), 422)
