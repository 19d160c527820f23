"""A customer's history on SQLite and PostgreSQL: documents, letters and delivery events on one timeline, kept by
outbox subscribers; kinds, text and time filters, keyset paging, access control in pairs, document changes and
destruction, redelivery and the backfill; and one letter through the real output path (LibreOffice, SMTP)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from sqlalchemy import delete, func, select, update

from output import service as output
from repository import events, service
from repository.db import get_engine, transaction
from repository.errors import InvalidInputError, NotFoundError
from repository.models import Document, OutboxDelivery, OutboxEvent, User
from repository.service.destruction import destroy_document
from search import history
from search import indexing as search_indexing
from search.errors import QuerySyntaxError
from search.timeline import feed
from search.timeline.backfill import backfill
from search.timeline.models import TimelineEntry
from tests.cli.test_cli import cli
from tests.output.letters_support import approved_template, customer, smtp, uno_pool  # noqa: F401  (fixtures)
from tests.records.support import make_customer, user
from tests.search.history_support import FakeLetter, archive, delivery
from tests.search.support import add, settle, start

pytestmark = pytest.mark.usefixtures("repo")


@dataclass
class World:
    admin: User
    author: User
    helpdesk: User
    manager: User
    customer: str
    contract: str
    complaint: str
    first: FakeLetter
    second: FakeLetter


@pytest.fixture
def world() -> World:
    start()
    admin, author = user("root", "admin"), user("alice", "author")
    helpdesk, manager = user("harry", "helpdesk"), user("rita", "records_manager")
    cid, other = make_customer(admin, "C-1"), make_customer(admin, "C-2")
    contract = add(author, "Mortgage contract for the house on Elm Street.", title="Mortgage contract",
                   customer_id=cid)
    complaint = add(author, "I am unhappy about the arrears charge.", title="Customer message",
                    document_type="correspondence", customer_id=cid)
    add(author, "Arrears policy for every customer.", title="Policy")  # no customer: on nobody's timeline
    add(author, "Arrears notice to someone else.", title="Other", customer_id=other)
    first = archive(author, cid, "Your balance is 42 pounds. Arrears reminder.", channels=("email",))
    delivery(first, "sent", "email", "250 Message accepted")
    delivery(first, "bounced", "email", "550 mailbox full")
    second = archive(author, cid, "Welcome pack and your new card.", channels=("print", "sms"),
                     queued=(("suppressed", "sms", "quiet hours until 08:00"),))
    settle()
    return World(admin, author, helpdesk, manager, cid, contract, complaint, first, second)


def _page(w: World, actor: User | None = None, **kwargs) -> history.HistoryPage:  # noqa: ANN003
    with transaction(readonly=True) as s:
        return history.customer_history(s, actor=actor or w.helpdesk, customer_id=w.customer, **kwargs)


def _seen(w: World, actor: User | None = None, **kwargs) -> list[tuple[str, str]]:  # noqa: ANN003
    """(kind, what) of each entry, newest first: a document's id, a letter's id, a delivery's state/channel."""
    out = []
    for i in _page(w, actor, limit=100, **kwargs).items:
        what = {"document": i.document_id, "letter": i.subject_id}.get(i.kind, f"{i.state}/{i.channel}")
        out.append((i.kind, what))
    return out


FULL = ["suppressed/sms", "second", "bounced/email", "sent/email", "first", "complaint", "contract"]


def _expect(w: World, names: list[str]) -> list[tuple[str, str]]:
    known = {"second": ("letter", w.second.letter_id), "first": ("letter", w.first.letter_id),
             "complaint": ("document", w.complaint), "contract": ("document", w.contract)}
    return [known.get(n, ("delivery", n)) for n in names]


def test_documents_letters_and_deliveries_on_one_timeline_newest_first(world: World) -> None:
    w = world
    assert _seen(w) == _expect(w, FULL)  # no entry for a letter's own document.created, nor other customers'
    items = {(i.kind, i.subject_id if i.kind != "delivery" else i.state): i for i in _page(w).items}
    letter = items[("letter", w.second.letter_id)]
    assert letter.title.startswith(f"Letter {w.second.reference}") and letter.document_id == w.second.document_id
    assert letter.summary == "statement letter by print, sms"
    assert letter.details["channels"] == ["print", "sms"] and letter.details["reference"] == w.second.reference
    bounced = items[("delivery", "bounced")]
    assert (bounced.title, bounced.summary, bounced.channel) == (
        f"Letter {w.first.reference}: bounced (email)", "550 mailbox full", "email")
    assert (bounced.subject_type, bounced.document_id, bounced.details["letter_id"]) == (
        "dispatch", w.first.document_id, w.first.letter_id)
    contract = items[("document", w.contract)]
    assert (contract.title, contract.summary) == ("Mortgage contract", "general")


def test_kinds_filter(world: World) -> None:
    w = world
    assert _seen(w, kinds=["delivery"]) == _expect(w, ["suppressed/sms", "bounced/email", "sent/email"])
    assert _seen(w, kinds=["document", "letter"]) == _expect(w, ["second", "first", "complaint", "contract"])
    assert _seen(w, kinds=["complaint"]) == []  # accepted: the complaints issue adds these entries
    with pytest.raises(InvalidInputError, match="kind must be one of"):
        _page(w, kinds=["letter", "memo"])


@pytest.mark.parametrize(("q", "names"), [
    ("mortgage", ["contract"]),  # a document's text, through the search index
    ("arrears", ["first", "complaint"]),  # a letter's text too; not the other customer's nor the policy
    ("bounced", ["bounced/email"]),  # a delivery's kind
    ("email", ["bounced/email", "sent/email"]),  # its channel
    ('"mailbox full"', ["bounced/email"]),  # a phrase in its detail
    ("quiet*", ["suppressed/sms"]),  # a prefix
    ("email -bounced", ["sent/email"]),
    ("arrears OR quiet", ["suppressed/sms", "first", "complaint"]),
    ("nothing-like-this", []),
])
def test_text_filter(world: World, q: str, names: list[str]) -> None:
    assert _seen(world, q=q) == _expect(world, names)


def test_text_filter_with_kinds_and_a_malformed_query(world: World) -> None:
    w = world
    assert _seen(w, q="arrears", kinds=["letter"]) == _expect(w, ["first"])
    assert _seen(w, q="email", kinds=["document", "letter"]) == []
    with pytest.raises(QuerySyntaxError) as err:
        _page(w, q="(arrears")
    assert err.value.extra["position"] == 0


def test_pages_follow_the_cursor_without_repeats_while_entries_arrive(world: World) -> None:
    w = world
    first = _page(w, limit=3)
    assert len(first.items) == 3 and first.next_cursor
    add(w.author, "A newer document", title="Newer", customer_id=w.customer)  # arrives between pages
    settle()
    seen = [i.id for i in first.items]
    cursor = first.next_cursor
    while cursor:
        page = _page(w, limit=3, cursor=cursor)
        seen += [i.id for i in page.items]
        cursor = page.next_cursor
    everything = [i.id for i in _page(w, limit=100).items]
    assert seen == everything[1:]  # every older entry once, in order; the newcomer heads a fresh first page
    with pytest.raises(InvalidInputError, match="cursor"):
        _page(w, cursor="not-a-cursor")
    with pytest.raises(InvalidInputError, match="limit"):
        _page(w, limit=0)


def test_from_is_inclusive_and_to_exclusive(world: World) -> None:
    w = world
    items = _page(w).items
    sent, first = items[3], items[4]
    assert _seen(w, at_from=sent.at) == _expect(w, FULL[:4])
    assert _seen(w, at_to=sent.at) == _expect(w, FULL[4:])
    assert _seen(w, at_from=first.at, at_to=sent.at) == _expect(w, ["first"])
    with pytest.raises(InvalidInputError, match="time zone"):
        _page(w, at_from=sent.at.replace(tzinfo=None))


def test_a_type_the_caller_may_not_read_is_left_out_in_pairs(world: World) -> None:
    w = world
    with transaction() as s:
        service.create_type(s, actor=w.admin, name="hr", allowed_media_types=[], read_roles=["admin"],
                            write_roles=["admin"])
    hr = add(w.admin, "Salary review and mortgage reference.", title="HR file", document_type="hr",
             customer_id=w.customer)
    settle()
    assert ("document", hr) in _seen(w, w.admin) and ("document", hr) not in _seen(w, w.helpdesk)
    assert _seen(w, w.admin, q="mortgage") == [("document", hr), ("document", w.contract)]
    assert _seen(w, w.helpdesk, q="mortgage") == [("document", w.contract)]
    # A letter restricted after an erasure request takes its delivery events with it, but not from a records
    # manager.
    with transaction() as s:
        s.execute(update(Document).where(Document.id == w.first.document_id).values(restricted=True))
    assert _seen(w, w.helpdesk) == _expect(w, ["suppressed/sms", "second", "complaint", "contract"])
    assert _seen(w, w.manager) == _expect(w, FULL)


def test_an_unknown_customer_is_not_found(world: World) -> None:
    with pytest.raises(NotFoundError), transaction(readonly=True) as s:
        history.customer_history(s, actor=world.admin, customer_id="no-such-customer")


def test_the_timeline_follows_title_changes_the_trash_and_destruction(world: World) -> None:
    w = world
    with transaction() as s:
        service.update_document(s, actor=w.author, document_id=w.contract, expected_revision=None,
                                title="Mortgage contract (signed)")
        service.trash_document(s, actor=w.author, document_id=w.complaint)
        service.trash_document(s, actor=w.author, document_id=w.first.document_id)
    settle()
    items = {i.document_id: i for i in _page(w, kinds=["document"]).items}
    assert items[w.contract].title == "Mortgage contract (signed)"
    assert w.complaint not in items  # in the trash: off the timeline ...
    assert _seen(w, kinds=["letter"]) == _expect(w, ["second", "first"])  # ... but a sent letter stays
    with transaction() as s:
        service.restore_document(s, actor=w.author, document_id=w.complaint)
    settle()
    assert ("document", w.complaint) in _seen(w)
    with transaction() as s:
        destroy_document(s, document_id=w.first.document_id, actor="records", reason="retention")
        destroy_document(s, document_id=w.contract, actor="records", reason="retention")
    settle()
    assert _seen(w, w.manager) == _expect(w, ["suppressed/sms", "second", "complaint"])
    with transaction(readonly=True) as s:  # gone from the table, not just hidden: nothing of them is kept
        assert not s.execute(select(TimelineEntry).where(
            TimelineEntry.document_id.in_([w.first.document_id, w.contract]))).first()
    delivery(w.first, "delivered", "email")  # a late event of a destroyed letter makes no entry
    settle()
    with transaction(readonly=True) as s:
        assert not s.execute(select(TimelineEntry).where(TimelineEntry.document_id == w.first.document_id)).first()


def _count() -> int:
    with transaction(readonly=True) as s:
        return s.execute(select(func.count()).select_from(TimelineEntry)).scalar_one()


def test_an_event_delivered_twice_makes_one_entry(world: World) -> None:
    before = _count()
    with transaction() as s:
        sent = s.execute(select(OutboxEvent).where(OutboxEvent.name == "letter.sent")).scalar_one()
        s.execute(delete(OutboxDelivery).where(OutboxDelivery.event_id == sent.id,
                                               OutboxDelivery.subscriber == feed.SUBSCRIBER))
        sent.delivered_at = None
    settle()  # the outbox delivers it again
    with transaction() as s:
        event = s.get(OutboxEvent, sent.id)
        feed.on_creating_event(s, event)  # and a handler run twice in one transaction
        feed.on_creating_event(s, event)
    assert _count() == before
    assert _seen(world) == _expect(world, FULL)


def test_the_backfill_puts_events_from_before_the_timeline_on_it_once(world: World) -> None:
    w = world
    expected = _seen(w)
    # An install from before the timeline: its events were delivered with no timeline subscriber.
    events.clear_subscribers()
    search_indexing.register()
    old = add(w.author, "A document from last year.", title="Old", customer_id=w.customer)
    with transaction() as s:  # a delivery event from before payloads carried the document id
        events.emit(s, "letter.delivered", {"letter_id": w.second.letter_id, "customer_id": w.customer,
                                            "channel": "print", "dispatch_id": "d-1", "detail": ""})
    settle()
    with transaction() as s:
        s.execute(delete(TimelineEntry))
        destroy_document(s, document_id=w.complaint, actor="records", reason="retention")
        service.update_document(s, actor=w.author, document_id=w.contract, expected_revision=None, title="Renamed")
    settle()
    feed.register()
    added = backfill(get_engine(), batch=3)  # several batches
    assert added == _count() > 0
    # The destroyed document stays gone, the one from before the timeline arrives, titles are current.
    assert _seen(w) == [("delivery", "delivered/print"), ("document", old),
                        *[e for e in expected if e != ("document", w.complaint)]]
    assert _page(w).items[0].document_id == w.second.document_id  # found by the letter id in its metadata
    assert next(i for i in _page(w).items if i.document_id == w.contract).title == "Renamed"
    assert backfill(get_engine()) == 0  # again: nothing new
    assert _count() == added


@pytest.mark.libreoffice
@pytest.mark.smtp
def test_a_real_letter_and_its_email_on_the_timeline(make_user, uno_pool, smtp) -> None:  # noqa: ANN001, F811
    start()
    author, approver = make_user("alice", "author"), make_user("bob", "approver")
    admin, helpdesk = make_user("root", "admin"), make_user("harry", "helpdesk")
    approved_template(author, approver)
    cid = customer(admin, "C-1", email="ada@example.com", channel_preferences={"statement": "email"})
    with transaction() as s:
        letter = output.create_letter(s, actor=author.user, template="statement", customer_id=cid,
                                      data={"balance": 42})
        letter_id, document_id, reference = letter.id, letter.document_id, letter.reference
    output.dispatch_due()
    settle()
    assert len(smtp.messages) == 1
    with transaction(readonly=True) as s:
        page = history.customer_history(s, actor=helpdesk.user, customer_id=cid)
    assert [(i.kind, i.state, i.channel) for i in page.items] == [("delivery", "sent", "email"),
                                                                  ("letter", "created", "email")]
    sent, made = page.items
    assert (made.subject_id, made.document_id, sent.document_id) == (letter_id, document_id, document_id)
    assert made.title == f"Letter {reference} (statement)" and sent.details["letter_id"] == letter_id
    with transaction(readonly=True) as s:  # the composed PDF's text is searchable on the timeline
        found = history.customer_history(s, actor=helpdesk.user, customer_id=cid, q="balance")
    assert [i.kind for i in found.items] == ["letter"]


def test_postroom_search_timeline_backfill(world: World) -> None:
    expected = _seen(world)
    with transaction() as s:
        s.execute(delete(TimelineEntry))
    first = cli(dict(os.environ), "search", "timeline-backfill")
    assert first.returncode == 0, first.stderr
    assert f"added {len(expected) + 1} timeline entries" in first.stderr  # and the other customer's document
    assert _seen(world) == expected
    again = cli(dict(os.environ), "search", "timeline-backfill")
    assert again.returncode == 0 and "added 0 timeline entries" in again.stderr
