"""GET /api/v1/customers/{id}/history through the ASGI app on SQLite and PostgreSQL: the timeline's shape, kinds
and text filters, paging by next_cursor and Link, permissions in pairs, and bad input as problem details."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from tests.api.helpers import API, assert_problem, create_customer, create_document, create_type
from tests.conftest import Account
from tests.search.history_support import FakeLetter, archive, delivery
from tests.search.support import settle, start


@dataclass
class Desk:
    admin: Account
    helpdesk: Account
    customer: str
    note: str
    letter: FakeLetter


@pytest.fixture
def desk(client, make_user) -> Desk:  # noqa: ANN001
    start()
    admin, helpdesk = make_user("root", "admin"), make_user("harry", "helpdesk")
    customer = create_customer(client, admin)["id"]
    note = create_document(client, admin, b"Phone call: the customer asked about arrears.", title="Call note",
                           customer_id=customer)["id"]
    letter = archive(admin.user, customer, "Your arrears reminder.", channels=("email",))
    delivery(letter, "bounced", "email", "550 mailbox full")
    settle()
    return Desk(admin, helpdesk, customer, note, letter)


def _url(customer_id: str) -> str:
    return f"{API}/customers/{customer_id}/history"


def _get(client, account: Account, customer_id: str, **params):  # noqa: ANN001, ANN003, ANN202
    return client.get(_url(customer_id), params=params, headers=account.headers)


def test_the_history_answers_newest_first(client, desk: Desk) -> None:  # noqa: ANN001
    response = _get(client, desk.helpdesk, desk.customer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    assert [(i["kind"], i["state"]) for i in body["items"]] == [("delivery", "bounced"), ("letter", "created"),
                                                                ("document", "active")]
    bounced, letter, note = body["items"]
    assert (bounced["channel"], bounced["summary"], bounced["subject_type"]) == ("email", "550 mailbox full",
                                                                                "dispatch")
    assert bounced["details"]["letter_id"] == desk.letter.letter_id
    assert (letter["subject_id"], letter["document_id"]) == (desk.letter.letter_id, desk.letter.document_id)
    assert (note["document_id"], note["title"], note["summary"]) == (desk.note, "Call note", "general")
    assert dt.datetime.fromisoformat(note["at"]) < dt.datetime.fromisoformat(bounced["at"])


def test_kinds_repeat_and_text_filters(client, desk: Desk) -> None:  # noqa: ANN001
    def kinds(**params) -> list[str]:  # noqa: ANN003
        response = _get(client, desk.helpdesk, desk.customer, **params)
        assert response.status_code == 200, response.text
        return [i["kind"] for i in response.json()["items"]]

    assert kinds(kind=["letter", "delivery"]) == ["delivery", "letter"]
    assert kinds(kind="document") == ["document"]
    assert kinds(kind="complaint") == []
    assert kinds(q="arrears") == ["letter", "document"]  # the documents' text, through the search index
    assert kinds(q='"mailbox full"') == ["delivery"]  # a delivery's detail
    assert kinds(q="arrears", kind="document") == ["document"]


def test_pages_follow_next_cursor_and_link(client, desk: Desk) -> None:  # noqa: ANN001
    first = _get(client, desk.helpdesk, desk.customer, limit=2)
    assert first.status_code == 200
    cursor = first.json()["next_cursor"]
    assert cursor and f"cursor={cursor}" in first.headers["Link"] and 'rel="next"' in first.headers["Link"]
    second = _get(client, desk.helpdesk, desk.customer, limit=2, cursor=cursor)
    assert second.json()["next_cursor"] is None and "Link" not in second.headers
    ids = [i["id"] for i in first.json()["items"] + second.json()["items"]]
    assert ids == [i["id"] for i in _get(client, desk.helpdesk, desk.customer).json()["items"]]


def test_permissions_in_pairs(client, desk: Desk) -> None:  # noqa: ANN001
    create_type(client, desk.admin, "hr", read_roles=["admin"], write_roles=["admin"])
    hr = create_document(client, desk.admin, b"Salary review", title="HR file", document_type="hr",
                         customer_id=desk.customer)["id"]
    settle()
    by_admin = [i["document_id"] for i in _get(client, desk.admin, desk.customer, kind="document").json()["items"]]
    by_desk = [i["document_id"] for i in _get(client, desk.helpdesk, desk.customer, kind="document").json()["items"]]
    assert (by_admin, by_desk) == ([hr, desk.note], [desk.note])
    assert _get(client, desk.admin, desk.customer, q="salary").json()["items"][0]["document_id"] == hr
    assert _get(client, desk.helpdesk, desk.customer, q="salary").json()["items"] == []
    for account in (desk.admin, desk.helpdesk):
        assert_problem(_get(client, account, "no-such-customer"), 404, "not found")
    assert client.get(_url(desk.customer)).status_code == 401


@pytest.mark.parametrize(("params", "status", "words"), [
    ({"kind": "memo"}, 422, ["kind"]),
    ({"q": '"unclosed'}, 400, ["position 0"]),
    ({"q": "a AND"}, 400, ["position 5"]),
    ({"cursor": "garbage"}, 422, ["cursor"]),
    ({"from": "2025-01-01T00:00:00"}, 422, ["from"]),
    ({"limit": 0}, 422, ["limit"]),
    ({"limit": 101}, 422, ["limit"]),
])
def test_bad_input_is_a_problem(client, desk: Desk, params, status, words) -> None:  # noqa: ANN001
    assert_problem(_get(client, desk.helpdesk, desk.customer, **params), status, *words)
