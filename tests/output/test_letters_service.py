"""Letters through the service layer on SQLite and PostgreSQL: composed by a real LibreOffice, archived, and
dispatched to a real SMTP server (aiosmtpd) and a real IPP printer (ippeveprinter)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import io
import threading
import time

import pikepdf
import pytest
from sqlalchemy import select, update

from output import service as output
from output.compose import read_metadata
from output.models import Dispatch, Letter
from output.service import policy
from repository import service
from repository.config import Settings, get_settings
from repository.db import transaction
from repository.errors import PermissionDeniedError
from repository.models import Customer, DocumentType, User
from tests.output.letters_support import (  # noqa: F401  (fixtures)
    approved_template,
    customer,
    free_port,
    printer,
    sms_provider,
    smtp,
    uno_pool,
)

pytestmark = [pytest.mark.usefixtures("repo", "uno_pool"), pytest.mark.libreoffice]


@pytest.fixture
def people(make_user):  # noqa: ANN001, ANN201
    """An author, an approver, an admin and a help-desk user."""
    return {"author": make_user("alice", "author"), "approver": make_user("bob", "approver"),
            "admin": make_user("root", "admin"), "helpdesk": make_user("harry", "helpdesk")}


@pytest.fixture
def template(people) -> str:  # noqa: ANN001
    """An approved `statement` template."""
    return approved_template(people["author"], people["approver"])


def _consent(account, customer_id: str, purpose: str, granted: bool = True, source: str = "web form") -> None:  # noqa: ANN001
    with transaction() as s:
        service.record_consent(s, actor=account.user, customer_id=customer_id, purpose=purpose, granted=granted,
                               source=source)


def _letter(account, customer_id: str, **kwargs) -> Letter:  # noqa: ANN001, ANN003
    with transaction() as s:
        letter = output.create_letter(s, actor=account.user, template="statement", customer_id=customer_id,
                                      data={"balance": kwargs.pop("balance", 42)}, **kwargs)
        s.flush()
        s.expunge(letter)
    return letter


def _rows(letter_id: str) -> dict[str, Dispatch]:
    with transaction(readonly=True) as s:
        return {r.channel: r for r in s.execute(select(Dispatch).where(Dispatch.letter_id == letter_id)).scalars()}


def _status(letter_id: str) -> str:
    with transaction(readonly=True) as s:
        return s.get(Letter, letter_id).status


def _pdf(account, letter: Letter) -> bytes:  # noqa: ANN001
    with transaction(readonly=True) as s:
        version = service.get_version(s, actor=account.user, document_id=letter.document_id)
        return b"".join(service.read_version(s, version=version))


def _dispatch_until(predicate, rounds: int = 200) -> None:  # noqa: ANN001
    for _ in range(rounds):
        output.dispatch_due(limit=10)
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("dispatch did not reach the expected state")


def test_a_letter_is_archived_as_a_pdfa_letter_document_of_the_customer(people, template) -> None:  # noqa: ANN001
    customer_id = customer(people["admin"], "C-1")
    letter = _letter(people["author"], customer_id)
    pdf = _pdf(people["helpdesk"], letter)
    with transaction(readonly=True) as s:
        document = service.get_document(s, actor=people["helpdesk"].user, document_id=letter.document_id)
        assert s.get(DocumentType, document.document_type_id).name == "letter"
        assert document.customer_id == customer_id
        meta = dict(document.meta)
    assert meta["template_id"] == template and meta["template_version"] == "1.0"
    assert meta["data_sha256"] == letter.data_sha256 and len(letter.data_sha256) == 64
    assert meta["channels"] == ["print"] and meta["batch_id"] is None
    xmp = read_metadata(pdf)
    assert (xmp["letterId"], xmp["template"], xmp["templateVersion"]) == (letter.id, "statement", "1.0")
    assert xmp["pdfa"].startswith("2")
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        assert len(doc.pages) == letter.pages == 1
    assert letter.reference.startswith("L-") and letter.status == "composed"


def test_only_letter_writers_may_create_letters(people, template) -> None:  # noqa: ANN001
    customer_id = customer(people["admin"], "C-1")
    with pytest.raises(PermissionDeniedError):
        _letter(people["helpdesk"], customer_id)
    with transaction() as s:  # an admin lets the help desk send letters
        s.execute(select(DocumentType).where(DocumentType.name == "letter")).scalar_one().write_roles = [
            "admin", "author", "helpdesk"]
    assert _letter(people["helpdesk"], customer_id).status == "composed"


@pytest.mark.smtp
def test_an_email_letter_reaches_the_smtp_server_once_with_its_pdf(people, template, smtp) -> None:  # noqa: ANN001, F811
    customer_id = customer(people["admin"], "C-1", email="ada@example.com",
                           channel_preferences={"statement": "email"})
    letter = _letter(people["author"], customer_id)
    threads = [threading.Thread(target=output.dispatch_due) for _ in range(2)]  # two dispatchers at once
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    output.dispatch_due()
    assert len(smtp.messages) == 1
    _from, to, raw = smtp.messages[0]
    assert to == ["ada@example.com"]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    attachment = next(message.iter_attachments())
    assert attachment.get_content() == _pdf(people["author"], letter)
    rows = _rows(letter.id)
    assert (rows["email"].state, rows["email"].attempts) == ("sent", 1)
    assert rows["email"].provider_ref == message["Message-ID"]
    assert _status(letter.id) == "done"


@pytest.mark.smtp
def test_a_crash_after_the_send_is_resent_with_the_same_message_id(people, template, smtp) -> None:  # noqa: ANN001, F811
    customer_id = customer(people["admin"], "C-1", email="ada@example.com",
                           channel_preferences={"statement": "email"})
    letter = _letter(people["author"], customer_id)
    output.dispatch_due()
    with transaction() as s:  # as if the dispatcher died after the send, before recording it
        row = s.execute(select(Dispatch).where(Dispatch.letter_id == letter.id)).scalar_one()
        row.state, row.lease_until = "sending", dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert output.dispatch_due() == 0  # the lease holds: nobody sends it meanwhile
    with transaction() as s:
        s.execute(select(Dispatch).where(Dispatch.letter_id == letter.id)).scalar_one().lease_until = (
            dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    assert output.dispatch_due() == 1
    ids = {email.message_from_bytes(raw)["Message-ID"] for _f, _t, raw in smtp.messages}
    assert len(smtp.messages) == 2 and len(ids) == 1  # recognisable as the same message by the receiver
    assert _rows(letter.id)["email"].state == "sent"


def test_a_paperless_customer_gets_the_portal_and_an_sms_with_the_link(people, template, sms_provider) -> None:  # noqa: ANN001, F811
    customer_id = customer(people["admin"], "C-1", paperless=True, mobile="+447911123456")
    letter = _letter(people["author"], customer_id)
    output.dispatch_due()
    output.dispatch_due()
    rows = _rows(letter.id)
    assert (rows["portal"].state, rows["sms"].state, rows["sms"].provider_ref) == ("delivered", "sent", "m-1")
    assert len(sms_provider.requests) == 1
    request = sms_provider.requests[0]
    assert request["headers"]["Idempotency-Key"] == rows["sms"].idempotency_key
    assert request["body"]["to"] == "+447911123456"
    assert output.portal_url(get_settings(), letter.id) in request["body"]["text"]
    assert _status(letter.id) == "done"


def test_no_sms_leaves_in_quiet_hours(people, template, sms_provider, monkeypatch) -> None:  # noqa: ANN001, F811
    hour = dt.datetime.now(dt.UTC).hour
    monkeypatch.setenv("POSTROOM_SMS_QUIET_HOURS", f"{hour}-{(hour + 2) % 24}")
    get_settings.cache_clear()
    letter = _letter(people["author"], customer(people["admin"], "C-1", paperless=True, mobile="+447911123456"))
    queued = _rows(letter.id)["sms"].next_attempt_at
    assert queued > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=59)
    with transaction() as s:  # as if it were due now (a retry scheduled into the quiet hours)
        s.execute(select(Dispatch).where(Dispatch.letter_id == letter.id, Dispatch.channel == "sms")
                  ).scalar_one().next_attempt_at = dt.datetime.now(dt.UTC)
    output.dispatch_due()
    row = _rows(letter.id)["sms"]
    assert (row.state, row.attempts, row.next_attempt_at) == ("queued", 0, queued)
    assert sms_provider.requests == []


def _dsn(returned: bytes) -> bytes:
    return (b"From: MAILER-DAEMON@mx.example.test\r\nTo: postroom@localhost\r\nSubject: Undelivered Mail\r\n"
            b'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
            b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n\r\n"
            b"Final-Recipient: rfc822; ada@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            b"Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n"
            b"--B\r\nContent-Type: message/rfc822\r\n\r\n" + returned + b"\r\n--B--\r\n")


@pytest.mark.smtp
def test_a_bounce_marks_the_email_bounced_and_queues_print(people, template, smtp) -> None:  # noqa: ANN001, F811
    customer_id = customer(people["admin"], "C-1", email="ada@example.com",
                           channel_preferences={"statement": "email"})
    letter = _letter(people["author"], customer_id)
    output.dispatch_due()
    with transaction() as s:
        assert output.record_dsn(s, raw=b"From: a@b.test\r\n\r\nnot a bounce\r\n") is None
        row = output.record_dsn(s, raw=_dsn(smtp.messages[0][2]))
        assert row is not None and row.state == "bounced"
    rows = _rows(letter.id)
    assert rows["email"].last_error == "5.1.1 smtp; 550 5.1.1 no such user"
    assert (rows["print"].state, rows["print"].fallback_of) == ("queued", rows["email"].id)
    assert _status(letter.id) == "dispatching"


@pytest.mark.ipp
def test_a_print_letter_reaches_the_printer_and_becomes_delivered(people, template, printer) -> None:  # noqa: ANN001, F811
    letter = _letter(people["author"], customer(people["admin"], "C-1"))
    _dispatch_until(lambda: _rows(letter.id)["print"].state == "delivered")
    row = _rows(letter.id)["print"]
    assert row.provider_ref.startswith("ipp://") and row.attempts == 1
    assert _status(letter.id) == "done"
    output.dispatch_due()  # nothing more to do
    assert _rows(letter.id)["print"].attempts == 1


@pytest.mark.ipp
def test_a_print_job_submitted_before_a_crash_is_found_not_printed_again(people, template, printer) -> None:  # noqa: ANN001, F811
    letter = _letter(people["author"], customer(people["admin"], "C-1"))
    _dispatch_until(lambda: _rows(letter.id)["print"].state in ("sent", "delivered"))
    first = _rows(letter.id)["print"].provider_ref
    with transaction() as s:  # as if the dispatcher died after Print-Job, before recording the job
        row = s.execute(select(Dispatch).where(Dispatch.letter_id == letter.id)).scalar_one()
        row.state, row.provider_ref = "sending", None
        row.lease_until = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    _dispatch_until(lambda: _rows(letter.id)["print"].state in ("sent", "delivered"))
    with transaction(readonly=True) as s:
        row = s.execute(select(Dispatch).where(Dispatch.letter_id == letter.id)).scalar_one()
        events = [e.detail for e in output.ledger(s, letter_id=letter.id)[1]]
    assert first and first.startswith("ipp://") and row.provider_ref == first
    assert "already submitted by an earlier attempt" in events


@pytest.mark.ipp
def test_smtp_down_retries_then_falls_back_to_print(people, template, printer, monkeypatch) -> None:  # noqa: ANN001, F811
    monkeypatch.setenv("POSTROOM_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("POSTROOM_SMTP_PORT", str(free_port()))  # nothing listens there
    monkeypatch.setenv("POSTROOM_DISPATCH_BACKOFF_SECONDS", "0")
    monkeypatch.setenv("POSTROOM_DISPATCH_MAX_ATTEMPTS", "3")
    get_settings.cache_clear()
    customer_id = customer(people["admin"], "C-1", email="ada@example.com",
                           channel_preferences={"statement": "email"})
    letter = _letter(people["author"], customer_id)
    _dispatch_until(lambda: "print" in _rows(letter.id))
    monkeypatch.setenv("POSTROOM_DISPATCH_MAX_ATTEMPTS", "200")  # the test printer answers "busy" while printing
    get_settings.cache_clear()
    _dispatch_until(lambda: _rows(letter.id)["print"].state == "delivered")
    rows = _rows(letter.id)
    assert (rows["email"].state, rows["email"].attempts) == ("failed", 3)
    assert "SMTP connection failed" in rows["email"].last_error
    assert rows["print"].fallback_of == rows["email"].id and "fallback after email" in rows["print"].reason
    assert _status(letter.id) == "done"


def test_the_marketing_cap_suppresses_with_the_reason(people, template, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("POSTROOM_MARKETING_CAP", "1/30")
    get_settings.cache_clear()
    customer_id = customer(people["admin"], "C-1")
    no_consent = _letter(people["author"], customer_id, category="marketing")
    assert _rows(no_consent.id)["print"].reason == \
        "no granted marketing consent for print (marketing-print or marketing)"
    with transaction() as s:
        service.record_consent(s, actor=people["admin"].user, customer_id=customer_id, purpose="marketing",
                               granted=True, source="web form")
    first = _letter(people["author"], customer_id, category="marketing")
    second = _letter(people["author"], customer_id, category="marketing")
    assert _rows(first.id)["print"].state == "queued"
    row = _rows(second.id)["print"]
    assert row.state == "suppressed"
    assert row.reason == "marketing cap reached: 1 'marketing' letters in the last 30 days (limit 1)"
    assert _status(second.id) == "done"
    transactional = _letter(people["author"], customer_id)  # exempt
    assert _rows(transactional.id)["print"].state == "queued"


@pytest.mark.smtp
def test_consent_withdrawn_before_the_send_suppresses_the_queued_message(people, template, smtp) -> None:  # noqa: ANN001, F811
    admin = people["admin"]
    customer_id = customer(admin, "C-9", email="ada@example.com", channel_preferences={"marketing": "email"})
    _consent(admin, customer_id, "marketing-email")
    letter = _letter(people["author"], customer_id, category="marketing")
    assert _rows(letter.id)["email"].state == "queued"
    _consent(admin, customer_id, "marketing-email", granted=False, source="unsubscribe link")
    output.dispatch_due()
    row = _rows(letter.id)["email"]
    assert (row.state, row.reason) == ("suppressed", "marketing consent for email withdrawn before the letter was sent")
    assert smtp.messages == []
    assert _status(letter.id) == "done"
    transactional = _letter(people["author"], customer_id, channel="email")  # consent is only for marketing
    output.dispatch_due()
    assert _rows(transactional.id)["email"].state == "sent" and len(smtp.messages) == 1


def _due_in(letter_id: str, channel: str, delay: dt.timedelta) -> None:
    """Move a ledger row's next attempt (a day ahead holds it back, as if no dispatcher's claim had reached it)."""
    with transaction() as s:
        s.execute(update(Dispatch).where(Dispatch.letter_id == letter_id, Dispatch.channel == channel)
                  .values(next_attempt_at=dt.datetime.now(dt.UTC) + delay))


def test_the_linked_portal_row_follows_its_sms_at_send_time(people, template, sms_provider) -> None:  # noqa: ANN001, F811
    from output import events as output_events
    from repository import events
    from repository.db import get_engine

    output_events.register()
    admin = people["admin"]
    customer_id = customer(admin, "C-12", mobile="+447911123456", channel_preferences={"marketing": "sms"})
    _consent(admin, customer_id, "marketing")
    # The SMS is refused when it is claimed: its queued portal row goes with it.
    held = _letter(people["author"], customer_id, category="marketing")
    _due_in(held.id, "portal", dt.timedelta(days=1))
    _consent(admin, customer_id, "marketing-sms", granted=False, source="STOP reply")
    output.dispatch_due()
    rows = _rows(held.id)
    assert (rows["sms"].state, rows["portal"].state) == ("suppressed", "suppressed")
    # An SMS already sent keeps the letter it links to, whatever is withdrawn after.
    _consent(admin, customer_id, "marketing-sms", source="web form")
    sent = _letter(people["author"], customer_id, category="marketing")
    _due_in(sent.id, "portal", dt.timedelta(days=1))
    output.dispatch_due()
    assert _rows(sent.id)["sms"].state == "sent"
    _consent(admin, customer_id, "marketing-sms", granted=False, source="STOP reply")
    events.deliver_pending(get_engine())
    _due_in(sent.id, "portal", -dt.timedelta(seconds=1))
    output.dispatch_due()
    assert _rows(sent.id)["portal"].state == "delivered"


def test_a_withdrawal_recorded_suppresses_queued_print_house_marketing(people, template, monkeypatch) -> None:  # noqa: ANN001
    from output import events as output_events
    from repository import events
    from repository.db import get_engine

    monkeypatch.setenv("POSTROOM_PRINT_ROUTE", "house")  # print rows wait for the daily run, not the dispatcher
    get_settings.cache_clear()
    output_events.register()
    admin = people["admin"]
    customer_id = customer(admin, "C-11")
    _consent(admin, customer_id, "marketing")
    offer, notice = _letter(people["author"], customer_id, category="marketing"), _letter(people["author"],
                                                                                           customer_id)
    events.deliver_pending(get_engine())  # the grant changes nothing
    assert (_rows(offer.id)["print"].state, _rows(notice.id)["print"].state) == ("queued", "queued")
    _consent(admin, customer_id, "marketing-print", granted=False, source="letter from the customer")
    events.deliver_pending(get_engine())
    row = _rows(offer.id)["print"]
    assert (row.state, row.reason) == ("suppressed", "marketing consent for print withdrawn before the letter was sent")
    assert _status(offer.id) == "done"
    assert _rows(notice.id)["print"].state == "queued"  # not marketing: consent does not apply



def test_a_print_run_leaves_out_marketing_whose_consent_was_withdrawn(people, template, monkeypatch) -> None:  # noqa: ANN001
    from output.service import print_house

    monkeypatch.setenv("POSTROOM_PRINT_ROUTE", "house")
    get_settings.cache_clear()
    admin = people["admin"]
    customer_id = customer(admin, "C-13")
    _consent(admin, customer_id, "marketing")
    offer, notice = _letter(people["author"], customer_id, category="marketing"), _letter(people["author"],
                                                                                           customer_id)
    plan = lambda: [p.letter_id for p in print_house.plan_run(  # noqa: E731
        s, actor=s.get(User, admin.user.id), now=dt.datetime.now(dt.UTC)).pieces]
    with transaction(readonly=True) as s:
        assert sorted(plan()) == sorted([offer.id, notice.id])
    # Withdrawn, and the outbox has not told output yet: the run must not print the offer all the same.
    _consent(admin, customer_id, "marketing", granted=False, source="phone call")
    with transaction(readonly=True) as s:
        assert plan() == [notice.id]


def test_each_marketing_category_has_its_own_cap(people, template, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("POSTROOM_MARKETING_CATEGORIES", "marketing,offers")
    monkeypatch.setenv("POSTROOM_MARKETING_CAP", "Offers=1/7; 2/30")
    get_settings.cache_clear()
    customer_id = customer(people["admin"], "C-1")
    with transaction() as s:
        service.record_consent(s, actor=people["admin"].user, customer_id=customer_id, purpose="marketing",
                               granted=True, source="web form")
    offers = [_letter(people["author"], customer_id, category="offers") for _ in range(2)]
    newsletters = [_letter(people["author"], customer_id, category="marketing") for _ in range(3)]
    assert [_rows(x.id)["print"].state for x in offers] == ["queued", "suppressed"]
    assert _rows(offers[1].id)["print"].reason == "marketing cap reached: 1 'offers' letters in the last 7 days " \
                                                  "(limit 1)"
    # The offer sent does not count against the other category's cap of 2.
    assert [_rows(x.id)["print"].state for x in newsletters] == ["queued", "queued", "suppressed"]


@pytest.mark.smtp
def test_a_marketing_fallback_goes_only_where_the_customer_consented(people, template, smtp) -> None:  # noqa: ANN001, F811
    admin = people["admin"]
    customer_id = customer(admin, "C-8", email="ada@example.com", channel_preferences={"marketing": "email"})

    def bounced_letter() -> str:
        letter = _letter(people["author"], customer_id, category="marketing")
        assert _rows(letter.id)["email"].state == "queued"
        output.dispatch_due()
        with transaction() as s:
            output.record_bounce(s, letter_id=letter.id, detail="550 5.1.1 no such user")
        return letter.id

    _consent(admin, customer_id, "marketing-email")
    assert sorted(_rows(bounced_letter())) == ["email"]  # no consent to market by post: no print fallback
    _consent(admin, customer_id, "marketing")
    assert _rows(bounced_letter())["print"].state == "queued"


@pytest.mark.smtp
def test_a_marketing_sms_fallback_publishes_the_suppressed_portal_row_it_links_to(people, template, smtp,  # noqa: ANN001, F811
                                                                                   sms_provider,  # noqa: F811
                                                                                   monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("POSTROOM_FALLBACK", "email>sms")
    get_settings.cache_clear()
    admin = people["admin"]
    customer_id = customer(admin, "C-7", paperless=True, email="ada@example.com", mobile="+447911123456")
    for purpose in ("marketing-email", "marketing-sms"):  # none for the portal inbox itself
        with transaction() as s:
            service.record_consent(s, actor=admin.user, customer_id=customer_id, purpose=purpose, granted=True,
                                   source="web form")
    letter = _letter(people["author"], customer_id, category="marketing")
    assert {c: r.state for c, r in _rows(letter.id).items()} == {"portal": "suppressed", "email": "queued"}
    output.dispatch_due()
    with transaction() as s:
        output.record_bounce(s, letter_id=letter.id, detail="550 5.1.1 no such user")
    rows = _rows(letter.id)
    assert (rows["sms"].state, rows["portal"].state) == ("queued", "queued")  # the SMS's link leads to the letter
    assert rows["portal"].reason == "the sms message links to the portal inbox"
    output.dispatch_due()  # no consent for the portal itself: the linked row goes with its SMS all the same
    rows = _rows(letter.id)
    assert (rows["sms"].state, rows["portal"].state) == ("sent", "delivered") and len(sms_provider.requests) == 1


def test_sms_consent_withdrawn_before_the_send_suppresses_the_sms_and_its_portal_row(people, template,  # noqa: ANN001
                                                                                     sms_provider) -> None:  # noqa: ANN001, F811
    admin = people["admin"]
    customer_id = customer(admin, "C-6", mobile="+447911123456", channel_preferences={"marketing": "sms"})
    _consent(admin, customer_id, "marketing")
    letter = _letter(people["author"], customer_id, category="marketing")
    assert {c: r.state for c, r in _rows(letter.id).items()} == {"sms": "queued", "portal": "queued"}
    _consent(admin, customer_id, "marketing-sms", granted=False, source="STOP reply")
    output.dispatch_due()
    rows = _rows(letter.id)
    assert (rows["sms"].state, rows["portal"].state) == ("suppressed", "suppressed")
    assert rows["portal"].reason == "the sms message it was added for is suppressed"
    assert sms_provider.requests == [] and _status(letter.id) == "done"


# --- channel choice (no composition needed) ------------------------------------------------------------------

@pytest.mark.parametrize(("setting", "offers", "others"), [
    ("4", (4, 30), (4, 30)), ("2/7", (2, 7), (2, 7)), ("Offers=1/7; 3/30;", (1, 7), (3, 30)),
    ("newsletter=9/1", (4, 30), (4, 30)),
])
def test_the_marketing_cap_setting(setting: str, offers: tuple[int, int], others: tuple[int, int]) -> None:
    settings = Settings(marketing_cap=setting)
    assert (policy.marketing_cap(settings, "offers"), policy.marketing_cap(settings, "marketing")) == (offers, others)


@pytest.mark.parametrize("setting", ["lots", "4/", "offers=", "=3", "4/30 5/30"])
def test_a_malformed_marketing_cap_stops_start_up(setting: str) -> None:
    with pytest.raises(ValueError, match="marketing_cap"):
        Settings(marketing_cap=setting)


def _choose(customer_id: str, category: str = "statement", override: str | None = None,
            now: dt.datetime | None = None) -> list[policy.Plan]:
    with transaction(readonly=True) as s:
        return policy.choose(s, settings=get_settings(), customer=s.get(Customer, customer_id), category=category,
                             override=override, now=now or dt.datetime.now(dt.UTC))


def test_marketing_consent_is_per_channel_with_the_general_answer_as_default(people, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("POSTROOM_MARKETING_CAP", "10/30")
    get_settings.cache_clear()
    admin = people["admin"]
    customer_id = customer(admin, "C-9", paperless=True, email="ada@example.com")

    def consent(purpose: str, granted: bool) -> None:
        with transaction() as s:
            service.record_consent(s, actor=admin.user, customer_id=customer_id, purpose=purpose, granted=granted,
                                   source="preference centre")

    def states() -> dict[str, tuple[str, str | None]]:
        return {p.channel: (p.state, p.reason) for p in _choose(customer_id, "marketing")}

    assert {c: s for c, (s, _r) in states().items()} == {"portal": "suppressed", "email": "suppressed"}
    consent("marketing", True)  # the general answer covers every channel
    assert {c: s for c, (s, _r) in states().items()} == {"portal": "queued", "email": "queued"}
    consent("marketing-email", False)  # a channel's own answer wins over the general one
    assert states() == {"portal": ("queued", None), "email": (
        "suppressed", "no granted marketing consent for email (marketing-email or marketing)")}
    consent("marketing", False)
    consent("marketing-email", True)
    assert {c: s for c, (s, _r) in states().items()} == {"portal": "suppressed", "email": "queued"}
    statement = {p.channel: p.state for p in _choose(customer_id, "statement")}
    assert statement == {"portal": "queued", "email": "queued"}  # transactional letters need no consent
    sms_only = customer(admin, "C-10", mobile="+447911123456", channel_preferences={"marketing": "sms"})
    with transaction() as s:
        service.record_consent(s, actor=admin.user, customer_id=sms_only, purpose="marketing-sms", granted=True,
                               source="preference centre")
    # The portal row an SMS links to goes with the SMS, whatever the consent for the portal itself.
    assert {p.channel: p.state for p in _choose(sms_only, "marketing")} == {"sms": "queued", "portal": "queued"}


def test_channel_choice_follows_preferences_paperless_paper_and_undeliverable(people) -> None:  # noqa: ANN001
    admin = people["admin"]
    assert [p.channel for p in _choose(customer(admin, "C-1"))] == ["print"]
    paperless = customer(admin, "C-2", paperless=True, email="ada@example.com")
    assert [p.channel for p in _choose(paperless)] == ["portal", "email"]
    assert [p.channel for p in _choose(paperless, "regulatory")] == ["portal", "email", "print"]
    sms = customer(admin, "C-3", paperless=True, mobile="+447911123456")
    assert [p.channel for p in _choose(sms)] == ["portal", "sms"]
    assert [p.channel for p in _choose(paperless, override="print")] == ["print"]
    prefers = customer(admin, "C-4", email="x@example.com", channel_preferences={"billing": "email", "news": "none"})
    assert [p.channel for p in _choose(prefers, "billing")] == ["email"]
    assert [(p.channel, p.state) for p in _choose(prefers, "news")] == [("print", "suppressed")]
    with transaction() as s:
        s.get(Customer, prefers).address_undeliverable = True
    plans = _choose(prefers)
    assert [p.channel for p in plans] == ["portal"]
    assert plans[0].reason == "postal address flagged undeliverable: portal instead of print"
    with pytest.raises(output.ChannelChoiceError):
        _choose(customer(admin, "C-5"), override="email")  # no email address


def test_sms_waits_for_the_end_of_quiet_hours(people) -> None:  # noqa: ANN001
    sms = customer(people["admin"], "C-1", paperless=True, mobile="+447911123456")
    night = dt.datetime(2026, 1, 5, 22, 30, tzinfo=dt.UTC)
    plans = {p.channel: p for p in _choose(sms, now=night)}
    assert plans["sms"].next_attempt_at == dt.datetime(2026, 1, 6, 8, 0, tzinfo=dt.UTC)
    assert plans["portal"].next_attempt_at == night
    noon = night.replace(hour=12)
    assert {p.channel: p for p in _choose(sms, now=noon)}["sms"].next_attempt_at == noon
