"""A letter stays exactly as sent, on SQLite and PostgreSQL: its document cannot be checked out or given new
content (409 problems), and the letter's PDF, its email attachment and its print-house piece are the archived
version even for a letter given a later version before that guard existed. A letter whose document was erased
fails its pending rows (no fallback) instead of blocking the dispatcher or the print run; a dispatcher that dies
while sending counts against the row's attempts."""

from __future__ import annotations

import datetime as dt
import email
import email.policy

import pytest
from sqlalchemy import select

from output import events as output_events
from output import service as output
from output.models import HANDOVER, Dispatch, Letter, PrintPiece
from output.service import dispatch, print_house
from repository import events, guards
from repository import service as repo
from repository.config import get_settings
from repository.db import get_engine, transaction
from repository.types import utcnow
from tests.api.helpers import API, DOCS, assert_problem, checkin, create_document
from tests.output.letters_support import approved_template, customer, pdf_of, quick_letter, smtp  # noqa: F401
from tests.repository.helpers import staged

ARCHIVED = pdf_of(1, "archived as sent")
LATER = pdf_of(3, "edited afterwards")


@pytest.fixture
def people(client, make_user):  # noqa: ANN001, ANN201
    """An author, an approver, an admin, a help-desk user and a records manager; an approved template."""
    found = {"author": make_user("alice", "author"), "approver": make_user("bob", "approver"),
             "admin": make_user("root", "admin"), "helpdesk": make_user("harry", "helpdesk"),
             "manager": make_user("rita", "records_manager")}
    approved_template(found["author"], found["approver"])
    return found


@pytest.fixture
def house(monkeypatch) -> None:  # noqa: ANN001
    """Print rows go to the print house."""
    monkeypatch.setenv("POSTROOM_PRINT_ROUTE", "house")
    get_settings.cache_clear()


def _rows(letter_id: str) -> dict[str, Dispatch]:
    with transaction(readonly=True) as s:
        return {r.channel: r for r in s.execute(select(Dispatch).where(Dispatch.letter_id == letter_id)).scalars()}


def _letter(letter_id: str) -> Letter:
    with transaction(readonly=True) as s:
        return s.get(Letter, letter_id)


def _edited_before_the_guard(author, letter_id: str) -> None:  # noqa: ANN001
    """Give the letter's document a later version the way it was possible before the guard existed."""
    document_id = _letter(letter_id).document_id
    guards.unregister("output")
    try:
        with transaction() as s:
            repo.checkout(s, actor=author.user, document_id=document_id)
        with transaction() as s:
            repo.checkin(s, actor=author.user, document_id=document_id, content=staged(LATER, "later.pdf"))
    finally:
        output_events.register()


def _erase(client, people, customer_id: str, letter_id: str) -> None:  # noqa: ANN001
    """A GDPR erasure request that destroys the letter's document (its data key shredded)."""
    response = client.post(f"{API}/customers/{customer_id}/erasure", json={"reference": "DSAR-1"},
                           headers=people["manager"].headers)
    assert response.status_code == 201, response.text
    assert _letter(letter_id).document_id in {e["document_id"] for e in response.json()["erased"]}


# --- archived exactly as sent ---------------------------------------------------------------------------------

def test_a_letters_document_cannot_be_checked_out_or_given_new_content(client, people) -> None:  # noqa: ANN001
    letter_id = quick_letter(people["author"], customer(people["admin"], "C-1"), ARCHIVED)
    document_id = _letter(letter_id).document_id
    for account in (people["author"], people["admin"]):
        assert_problem(client.post(f"{DOCS}/{document_id}/checkout", headers=account.headers), 409,
                       "archived PDF of letter", "cannot be checked out")
        assert_problem(checkin(client, account, document_id, LATER), 409, "cannot be given new content")
        assert_problem(client.put(f"{DOCS}/{document_id}/working-copy", content=LATER, headers=account.headers),
                       409, "letter")
    with transaction(readonly=True) as s:
        versions = repo.list_versions(s, actor=people["admin"].user, document_id=document_id)
    assert len(versions) == 1
    other = create_document(client, people["author"])  # any other document is checked out as before
    assert client.post(f"{DOCS}/{other['id']}/checkout", headers=people["author"].headers).status_code == 200


def test_the_letter_pdf_is_the_archived_version_not_a_later_one(client, people) -> None:  # noqa: ANN001
    letter_id = quick_letter(people["author"], customer(people["admin"], "C-1"), ARCHIVED)
    _edited_before_the_guard(people["author"], letter_id)
    response = client.get(f"{API}/letters/{letter_id}/pdf", headers=people["helpdesk"].headers)
    assert response.status_code == 200 and response.content == ARCHIVED


@pytest.mark.smtp
def test_the_email_attaches_the_archived_version(client, people, smtp) -> None:  # noqa: ANN001, F811
    customer_id = customer(people["admin"], "C-1", email="ada@example.com", channel_preferences={"statement": "email"})
    letter_id = quick_letter(people["author"], customer_id, ARCHIVED)
    _edited_before_the_guard(people["author"], letter_id)
    assert output.dispatch_due() == 1
    [(_from, _to, raw)] = smtp.messages
    attachment = next(email.message_from_bytes(raw, policy=email.policy.default).iter_attachments())
    assert attachment.get_content() == ARCHIVED
    assert _rows(letter_id)["email"].state == "sent"


@pytest.mark.usefixtures("house")
def test_the_print_house_prints_the_archived_version(client, people) -> None:  # noqa: ANN001
    letter_id = quick_letter(people["author"], customer(people["admin"], "C-1"), ARCHIVED)
    _edited_before_the_guard(people["author"], letter_id)  # three pages now, one as sent
    with transaction() as s:
        run = print_house.create_run(s, actor=people["admin"].user, now=utcnow())
        [piece] = s.execute(select(PrintPiece).where(PrintPiece.run_id == run.id)).scalars()
        assert (piece.letter_id, piece.pages) == (letter_id, 1)


# --- a letter whose document was destroyed --------------------------------------------------------------------

@pytest.mark.smtp
def test_an_erased_letter_fails_its_email_without_fallback_and_nothing_is_sent(client, people, smtp) -> None:  # noqa: ANN001, F811
    customer_id = customer(people["admin"], "C-1", email="ada@example.com", channel_preferences={"statement": "email"})
    letter_id = quick_letter(people["author"], customer_id, ARCHIVED)
    _erase(client, people, customer_id, letter_id)
    assert output.dispatch_due() == 1  # before the outbox told output about the erasure
    rows = _rows(letter_id)
    assert list(rows) == ["email"]  # no print fallback: it would need the same PDF
    assert (rows["email"].state, rows["email"].attempts) == ("failed", 1)
    assert "destroyed (erasure or disposition)" in rows["email"].last_error
    assert smtp.messages == [] and _letter(letter_id).status == "failed"
    assert output.dispatch_due() == 0



def test_an_email_handed_to_the_relay_stays_sent_when_its_letter_is_erased(client, people) -> None:  # noqa: ANN001
    customer_id = customer(people["admin"], "C-1", email="ada@example.com", channel_preferences={"statement": "email"})
    letter_id = quick_letter(people["author"], customer_id, ARCHIVED)
    with transaction() as s:  # its dispatcher stopped right after handing the email to the relay
        row = s.execute(select(Dispatch).where(Dispatch.letter_id == letter_id)).scalar_one()
        row.state, row.attempts, row.provider_ref = "sending", 1, f"{HANDOVER}<pr.h@localhost>"
        row.lease_until = utcnow() - dt.timedelta(seconds=1)
    _erase(client, people, customer_id, letter_id)
    events.deliver_pending(get_engine())  # output hears of the destruction
    assert _rows(letter_id)["email"].state == "sending"  # not failed: the customer probably has it
    output.dispatch_due()
    row = _rows(letter_id)["email"]
    assert (row.state, row.provider_ref) == ("sent", "<pr.h@localhost>")

@pytest.mark.usefixtures("house")
def test_an_erased_letter_is_left_out_of_the_print_run_and_its_print_row_fails(client, people) -> None:  # noqa: ANN001
    erased_customer = customer(people["admin"], "C-1")
    erased = quick_letter(people["author"], erased_customer, ARCHIVED)
    kept = quick_letter(people["author"], customer(people["admin"], "C-2", postcode="EC1A 1BB"), ARCHIVED)
    _erase(client, people, erased_customer, erased)
    with transaction() as s:  # the run goes ahead for everyone else
        run = print_house.create_run(s, actor=people["admin"].user, now=utcnow())
        pieces = list(s.execute(select(PrintPiece.letter_id).where(PrintPiece.run_id == run.id)).scalars())
    assert pieces == [kept]
    events.deliver_pending(get_engine())  # output hears of the destruction
    row = _rows(erased)["print"]
    assert row.state == "failed" and "destroyed" in row.last_error
    assert _letter(erased).status == "failed"
    assert _rows(kept)["print"].state == "sent"
    with pytest.raises(print_house.NothingToPrintError), transaction() as s:
        print_house.plan_run(s, actor=people["admin"].user, now=utcnow())



@pytest.mark.usefixtures("house")
def test_a_letter_erased_while_its_print_run_is_built_stops_the_run(client, people) -> None:  # noqa: ANN001
    customer_id = customer(people["admin"], "C-1")
    letter_id = quick_letter(people["author"], customer_id, ARCHIVED)
    admin = people["admin"].user
    with transaction(readonly=True) as s:
        built = print_house.build_run(s, plan=print_house.plan_run(s, actor=admin, now=utcnow()))
    try:
        _erase(client, people, customer_id, letter_id)  # before the outbox tells output about it
        with pytest.raises(print_house.PrintRunConflictError, match="destroyed"), transaction() as s:
            print_house.record_run(s, actor=admin, built=built)
    finally:
        built.release()
    with transaction(readonly=True) as s:
        assert s.execute(select(PrintPiece.id)).first() is None  # no print file holds the erased letter

# --- nothing loops forever ------------------------------------------------------------------------------------

class Killed(BaseException):
    """The dispatcher process dying mid-send (not an Exception: nothing catches it)."""


def test_a_dispatcher_that_dies_while_sending_counts_against_the_attempts(client, people, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("POSTROOM_DISPATCH_MAX_ATTEMPTS", "2")
    get_settings.cache_clear()
    customer_id = customer(people["admin"], "C-1", email="ada@example.com", channel_preferences={"statement": "email"})
    letter_id = quick_letter(people["author"], customer_id, ARCHIVED)
    now = [utcnow()]
    monkeypatch.setattr(dispatch, "utcnow", lambda: now[0])
    calls = []

    def die(*args: object) -> None:
        calls.append(args)
        raise Killed

    monkeypatch.setattr(dispatch, "_call", die)
    for attempt in (1, 2):
        with pytest.raises(Killed):
            output.dispatch_due()
        row = _rows(letter_id)["email"]
        assert (row.state, row.attempts) == ("sending", attempt)
        now[0] = row.lease_until + dt.timedelta(seconds=1)  # its lease runs out
    assert output.dispatch_due() == 0  # not sent a third time
    rows = _rows(letter_id)
    assert (rows["email"].state, rows["email"].attempts, len(calls)) == ("failed", 2, 2)
    assert "stopped during each of 2 attempts" in rows["email"].last_error
    assert "not known" in rows["email"].last_error
    assert list(rows) == ["email"]  # no fallback: the last attempt may have reached the customer


def test_a_message_that_cannot_be_prepared_is_retried_then_falls_back(client, people, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("POSTROOM_DISPATCH_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("POSTROOM_DISPATCH_BACKOFF_SECONDS", "0")
    get_settings.cache_clear()
    customer_id = customer(people["admin"], "C-1", email="ada@example.com", channel_preferences={"statement": "email"})
    letter_id = quick_letter(people["author"], customer_id, ARCHIVED)

    def unreadable(*_args: object, **_kwargs: object) -> None:
        raise OSError("blob store unreachable")

    monkeypatch.setattr(dispatch, "read_version", unreadable)
    assert output.dispatch_due() == 1
    row = _rows(letter_id)["email"]
    assert (row.state, row.attempts) == ("queued", 1)
    assert row.last_error == "preparing the message failed: OSError: blob store unreachable"
    output.dispatch_due()
    rows = _rows(letter_id)
    assert (rows["email"].state, rows["email"].attempts) == ("failed", 2)
    assert rows["print"].state == "queued"
