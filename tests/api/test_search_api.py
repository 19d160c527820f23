"""GET /api/v1/search over HTTP: hits with snippets and facets, filters (including meta.<key>), paging,
access control in pairs, and malformed queries answered 400 saying where."""

from __future__ import annotations

import pytest

from tests.api.helpers import API, assert_problem, create_document, create_type
from tests.search.support import settle, start

SEARCH = f"{API}/search"


@pytest.fixture
def indexed(client, author):  # noqa: ANN001, ANN201
    start()
    docs = [create_document(client, author, text.encode(), title=title, metadata=meta)
            for text, title, meta in [("The late payment fee was waived.", "Fee waiver", {"branch": "leeds"}),
                                      ("Payment received with thanks.", "Receipt", {"branch": "york"}),
                                      ("Your new card is on its way.", "Card", {})]]
    settle()
    return docs


def test_search_answers_hits_snippets_facets_and_pages(client, author, indexed) -> None:  # noqa: ANN001
    first = client.get(SEARCH, params={"q": "payment", "limit": 1}, headers=author.headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["total"] == 2 and len(body["hits"]) == 1 and body["next_cursor"]
    assert "<mark>" in body["hits"][0]["snippet"].lower()
    assert body["facets"]["document_type"] == {"general": 2}
    rest = client.get(SEARCH, params={"q": "payment", "limit": 1, "cursor": body["next_cursor"]},
                      headers=author.headers).json()
    assert {h["document_id"] for h in body["hits"] + rest["hits"]} == {indexed[0]["id"], indexed[1]["id"]}
    leeds = client.get(SEARCH, params={"q": "payment", "meta.branch": "leeds"}, headers=author.headers).json()
    assert [h["document_id"] for h in leeds["hits"]] == [indexed[0]["id"]]
    phrase = client.get(SEARCH, params={"q": '"late payment"'}, headers=author.headers).json()
    assert phrase["total"] == 1


def test_a_malformed_query_is_a_400_saying_where(client, author, indexed) -> None:  # noqa: ANN001
    problem = assert_problem(client.get(SEARCH, params={"q": 'payment AND ("late'}, headers=author.headers),
                             400, "position 13")
    assert problem["position"] == 13
    assert_problem(client.get(SEARCH, params={"q": "NOT payment"}, headers=author.headers), 400, "not only NOT")
    assert_problem(client.get(SEARCH, params={"q": "x", "cursor": "garbage"}, headers=author.headers), 422, "cursor")
    assert_problem(client.get(SEARCH, params={"q": "x", "sort": "random"}, headers=author.headers), 422)
    assert_problem(client.get(SEARCH, params={"q": "x", "from": "2025-01-01T00:00:00"}, headers=author.headers),
                   422)
    assert_problem(client.get(SEARCH, params={"q": "x", "document_type": "nope"}, headers=author.headers), 422,
                   "nope")


def test_results_hold_only_documents_the_caller_may_read(client, author, make_user, indexed) -> None:  # noqa: ANN001
    admin = make_user("root", "admin")
    create_type(client, admin, "hr-file", read_roles=["author"], write_roles=["author"])
    secret = create_document(client, author, b"payment of the salary bonus", document_type="hr-file")
    settle()
    helpdesk = make_user("hugo", "helpdesk")
    seen = client.get(SEARCH, params={"q": "salary"}, headers=helpdesk.headers).json()
    assert seen["total"] == 0 and seen["hits"] == []
    allowed = client.get(SEARCH, params={"q": "salary"}, headers=author.headers).json()
    assert [h["document_id"] for h in allowed["hits"]] == [secret["id"]]
    assert client.get(SEARCH, params={"q": "salary"}).status_code == 401
