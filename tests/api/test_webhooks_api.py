"""Provider webhooks through the HTTP API on SQLite and PostgreSQL: SMS delivery receipts and email bounces (JSON
and raw DSN) against letters really sent to a loopback SMS provider and aiosmtpd; signatures, replays, bad input."""

from __future__ import annotations

import email
import json
import time

import pytest
from sqlalchemy import func, select

from output import service as output
from output.channels._email import LETTER_HEADER
from output.channels.signatures import HEADER, sign_webhook
from output.models import DeliveryEvent, Dispatch, Letter
from repository import events as repository_events
from repository.config import get_settings
from repository.db import get_engine, transaction
from repository.models import AuditEntry, OutboxEvent
from tests.api.helpers import assert_problem
from tests.output.letters_support import approved_template, customer, sms_provider, smtp, uno_pool  # noqa: F401

pytestmark = [pytest.mark.usefixtures("uno_pool", "secrets"), pytest.mark.libreoffice]

SMS = "/api/v1/webhooks/sms/receipts"
BOUNCES = "/api/v1/webhooks/email/bounces"
SMS_SECRET, EMAIL_SECRET = "whsec-sms-0123", "whsec-mail-4567"


@pytest.fixture
def secrets(monkeypatch) -> None:  # noqa: ANN001
    """Both webhooks configured; an SMS falls back to email or else print, an email to print."""
    monkeypatch.setenv("POSTROOM_SMS_WEBHOOK_SECRET", SMS_SECRET)
    monkeypatch.setenv("POSTROOM_EMAIL_WEBHOOK_SECRET", EMAIL_SECRET)
    monkeypatch.setenv("POSTROOM_FALLBACK", "sms>email>print")
    get_settings.cache_clear()


@pytest.fixture
def people(client, make_user):  # noqa: ANN001, ANN201
    """An author, an approver and an admin, with an approved `statement` template."""
    accounts = {"author": make_user("alice", "author"), "approver": make_user("bob", "approver"),
                "admin": make_user("root", "admin")}
    approved_template(accounts["author"], accounts["approver"])
    return accounts


def _letter(people, ref: str, **fields) -> str:  # noqa: ANN001, ANN003
    customer_id = customer(people["admin"], ref, **fields)
    with transaction() as s:
        return output.create_letter(s, actor=people["author"].user, template="statement", customer_id=customer_id,
                                    data={"balance": 42}).id


def _post(client, path: str, body: bytes | dict, secret: str, *, at: float | None = None,  # noqa: ANN001, ANN202
          content_type: str = "application/json", signature: str | None = None):
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    header = signature if signature is not None else sign_webhook(raw, secret, timestamp=int(at or time.time()))
    return client.post(path, content=raw, headers={HEADER: header, "Content-Type": content_type})


def _rows(letter_id: str) -> dict[str, Dispatch]:
    with transaction(readonly=True) as s:
        return {r.channel: r for r in s.execute(select(Dispatch).where(Dispatch.letter_id == letter_id)).scalars()}


def _snapshot(letter_id: str) -> tuple:
    """Everything a report may change: the ledger, the letter, its events, the audit trail and the outbox."""
    with transaction(readonly=True) as s:
        rows = sorted((r.channel, r.state, r.provider_ref, r.last_error, r.delivered_at)
                      for r in s.execute(select(Dispatch).where(Dispatch.letter_id == letter_id)).scalars())
        counts = [s.execute(select(func.count()).select_from(t)).scalar_one()
                  for t in (DeliveryEvent, AuditEntry, OutboxEvent)]
        return rows, s.get(Letter, letter_id).status, counts


def _sms_letter(people, sms_provider) -> str:  # noqa: ANN001, F811
    letter_id = _letter(people, "C-1", paperless=True, mobile="+447911123456")
    output.dispatch_due()
    assert _rows(letter_id)["sms"].state == "sent"
    return letter_id


def test_a_delivered_sms_receipt_settles_the_row_once(client, people, sms_provider) -> None:  # noqa: ANN001, F811
    letter_id = _sms_letter(people, sms_provider)
    row = _rows(letter_id)["sms"]
    receipt = {"id": row.provider_ref, "status": "delivered", "reference": row.idempotency_key}
    first = _post(client, SMS, receipt, SMS_SECRET)
    assert first.status_code == 200, first.text
    assert first.json() == {"result": "applied", "letter_id": letter_id, "channel": "sms", "state": "delivered"}
    row = _rows(letter_id)["sms"]
    assert row.state == "delivered" and row.delivered_at is not None
    letter = client.get(f"/api/v1/letters/{letter_id}", headers=people["admin"].headers).json()
    assert letter["status"] == "done"
    assert [e["kind"] for e in letter["events"] if e["channel"] == "sms"] == ["queued", "sent", "delivered"]
    before = _snapshot(letter_id)
    again = _post(client, SMS, receipt, SMS_SECRET)  # the provider retries: nothing changes
    assert again.status_code == 200 and again.json()["result"] == "unchanged"
    assert _snapshot(letter_id) == before


def test_a_failed_sms_receipt_bounces_the_row_and_queues_print(client, people, sms_provider) -> None:  # noqa: ANN001, F811
    letter_id = _sms_letter(people, sms_provider)
    receipt = {"id": _rows(letter_id)["sms"].provider_ref, "status": "undelivered", "error": "absent subscriber"}
    response = _post(client, SMS, receipt, SMS_SECRET)  # found by the provider's id alone
    assert response.status_code == 200 and response.json()["state"] == "bounced", response.text
    rows = _rows(letter_id)
    assert rows["sms"].last_error == "SMS provider: absent subscriber"
    assert (rows["print"].state, rows["print"].fallback_of) == ("queued", rows["sms"].id)
    before = _snapshot(letter_id)
    delivered_late = {"id": receipt["id"], "status": "delivered"}  # a report after the row settled
    assert _post(client, SMS, delivered_late, SMS_SECRET).json()["result"] == "unchanged"
    assert _post(client, SMS, receipt, SMS_SECRET).json()["result"] == "unchanged"
    assert _snapshot(letter_id) == before


def test_receipts_need_a_fresh_valid_signature_and_a_well_formed_body(client, people, sms_provider, monkeypatch,  # noqa: ANN001, F811
                                                                      ) -> None:
    letter_id = _sms_letter(people, sms_provider)
    body = json.dumps({"id": _rows(letter_id)["sms"].provider_ref, "status": "delivered"}).encode()
    before = _snapshot(letter_id)
    now = int(time.time())
    for signature in ["", "sha256=" + "0" * 64, f"t={now}", sign_webhook(body, "another-secret", timestamp=now),
                      sign_webhook(body + b" ", SMS_SECRET, timestamp=now),
                      sign_webhook(body, SMS_SECRET, timestamp=now - 301),  # a replay after the window
                      sign_webhook(body, SMS_SECRET, timestamp=now + 400)]:
        assert_problem(_post(client, SMS, body, SMS_SECRET, signature=signature), 401, "signature")
    for bad in [b"[1]", b"not json", b'{"status": "delivered"}', b'{"id": "", "status": "delivered"}',
                b'{"id": {"x": 1}, "status": "delivered"}', b"[" * 50_000]:
        assert_problem(_post(client, SMS, bad, SMS_SECRET), 422, "receipt")
    assert _snapshot(letter_id) == before
    unknown = _post(client, SMS, {"id": "no-such-message", "status": "delivered"}, SMS_SECRET)
    assert unknown.status_code == 202 and unknown.json()["result"] == "ignored"
    # A rotating sender signs with the old and the new secret; either v1 may match.
    rotating = f"t={now},v1={'ab' * 32},v1={sign_webhook(body, SMS_SECRET, timestamp=now).split('v1=')[1]}"
    assert _post(client, SMS, body, SMS_SECRET, signature=rotating).json()["result"] == "applied"
    monkeypatch.setenv("POSTROOM_SMS_WEBHOOK_SECRET", "")
    get_settings.cache_clear()
    assert_problem(_post(client, SMS, body, "", signature="t=1,v1=00"), 404, "not configured")  # no secret, no webhook


def _email_letter(people, ref: str) -> str:  # noqa: ANN001
    letter_id = _letter(people, ref, email=f"{ref.lower()}@example.com", channel_preferences={"statement": "email"})
    output.dispatch_due()
    assert _rows(letter_id)["email"].state == "sent"
    return letter_id


@pytest.mark.smtp
def test_a_hard_bounce_as_json_bounces_the_email_and_queues_print(client, people, smtp) -> None:  # noqa: ANN001, F811
    letter_id = _email_letter(people, "C-1")
    message_id = _rows(letter_id)["email"].provider_ref
    bounce = {"message_id": message_id.strip("<>"), "type": "hard", "reason": "550 5.1.1 mailbox unknown"}
    response = _post(client, BOUNCES, bounce, EMAIL_SECRET)
    assert response.status_code == 200, response.text
    assert response.json() == {"result": "applied", "letter_id": letter_id, "channel": "email", "state": "bounced"}
    rows = _rows(letter_id)
    assert rows["email"].last_error == "550 5.1.1 mailbox unknown"
    assert (rows["print"].state, rows["print"].fallback_of) == ("queued", rows["email"].id)
    before = _snapshot(letter_id)
    assert _post(client, BOUNCES, bounce, EMAIL_SECRET).json()["result"] == "unchanged"
    assert _snapshot(letter_id) == before


@pytest.mark.smtp
def test_a_soft_bounce_is_noted_once_and_changes_no_state(client, people, smtp) -> None:  # noqa: ANN001, F811
    letter_id = _email_letter(people, "C-1")
    bounce = {"letter_id": letter_id, "type": "soft", "reason": "452 4.2.2 mailbox full"}
    response = _post(client, BOUNCES, bounce, EMAIL_SECRET)
    assert response.status_code == 200 and response.json()["result"] == "noted", response.text
    rows = _rows(letter_id)
    assert list(rows) == ["email"] and rows["email"].state == "sent"
    before = _snapshot(letter_id)
    assert _post(client, BOUNCES, bounce, EMAIL_SECRET).json()["result"] == "unchanged"
    assert _snapshot(letter_id) == before
    events = client.get(f"/api/v1/letters/{letter_id}", headers=people["admin"].headers).json()["events"]
    assert [(e["kind"], e["detail"]) for e in events if e["kind"] == "soft_bounced"] == [
        ("soft_bounced", "452 4.2.2 mailbox full")]
    while repository_events.deliver_pending(get_engine()):  # the timeline follows the outbox
        pass
    with transaction(readonly=True) as s:
        customer_id = s.get(Letter, letter_id).customer_id
    history = client.get(f"/api/v1/customers/{customer_id}/history", params={"kind": "delivery"},
                         headers=people["admin"].headers)
    assert history.status_code == 200, history.text
    said = [(i["state"], i["channel"], i["summary"]) for i in history.json()["items"]]
    assert ("soft_bounced", "email", "452 4.2.2 mailbox full") in said


def _dsn_parts(returned: bytes) -> bytes:
    return (b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n\r\n"
            b"Final-Recipient: rfc822; c-1@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            b"Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n"
            b"--B\r\nContent-Type: message/rfc822\r\n\r\n" + returned + b"\r\n--B--\r\n")


@pytest.mark.smtp
def test_a_raw_dsn_bounces_the_email_it_returns(client, people, smtp) -> None:  # noqa: ANN001, F811
    first, second = _email_letter(people, "C-1"), _email_letter(people, "C-2")
    returned = {email.message_from_bytes(raw)[LETTER_HEADER]: raw for _f, _t, raw in smtp.messages}
    dsn = (b'From: MAILER-DAEMON@mx.example.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; '
           b'report-type=delivery-status; boundary="B"\r\n\r\n' + _dsn_parts(returned[first]))
    response = _post(client, BOUNCES, dsn, EMAIL_SECRET, content_type="message/rfc822")
    assert response.status_code == 200 and response.json()["letter_id"] == first, response.text
    assert _rows(first)["email"].state == "bounced" and _rows(first)["print"].state == "queued"
    assert _rows(first)["email"].last_error == "5.1.1 smtp; 550 5.1.1 no such user"
    # The report's parts alone, its boundary in the HTTP Content-Type (as some relays post it).
    parts = _dsn_parts(returned[second])
    response = _post(client, BOUNCES, parts, EMAIL_SECRET,
                     content_type='multipart/report; report-type=delivery-status; boundary="B"')
    assert response.status_code == 200 and response.json()["letter_id"] == second, response.text
    assert _rows(second)["email"].state == "bounced"


@pytest.mark.smtp
def test_bad_bounces_are_refused_and_change_nothing(client, people, smtp) -> None:  # noqa: ANN001, F811
    letter_id = _email_letter(people, "C-1")
    before = _snapshot(letter_id)
    good = {"letter_id": letter_id, "type": "hard", "reason": "550"}
    assert_problem(_post(client, BOUNCES, good, SMS_SECRET), 401, "signature")  # the other webhook's secret
    assert_problem(_post(client, BOUNCES, good, EMAIL_SECRET, at=time.time() - 3600), 401, "timestamp")
    for bad in [{"letter_id": letter_id, "type": "bouncy"}, {"type": "hard", "reason": "no message named"},
                {"letter_id": letter_id}, {"letter_id": "x" * 37, "type": "hard"}]:
        assert_problem(_post(client, BOUNCES, bad, EMAIL_SECRET), 422, "bounce")
    assert_problem(_post(client, BOUNCES, b"{", EMAIL_SECRET), 422, "bounce")
    assert_problem(_post(client, BOUNCES, b"From: a@b.test\r\n\r\nhello\r\n", EMAIL_SECRET,
                         content_type="message/rfc822"), 422, "delivery status")
    assert_problem(_post(client, BOUNCES, b"<xml/>", EMAIL_SECRET, content_type="application/xml"), 415)
    assert _snapshot(letter_id) == before
    unknown = _post(client, BOUNCES, {"message_id": "<someone.else@example.org>", "type": "hard"}, EMAIL_SECRET)
    assert unknown.status_code == 202 and unknown.json()["result"] == "ignored"
    big = b"x" * (10 * 1024 * 1024 + 1)
    assert _post(client, BOUNCES, big, EMAIL_SECRET, content_type="message/rfc822").status_code == 413
