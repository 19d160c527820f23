"""GET /api/v1/search over HTTP: hits with snippets and facets, filters (including meta.<key>), paging,
access control in pairs, malformed queries answered 400 saying where, and an Elasticsearch failing on its side
answered 502 without its internals."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from repository.config import get_settings
from search.backend import reset_backends
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
    for key in ['a"b', "a\\b"]:  # SQLite's JSON path would break on them (a 503 before)
        assert_problem(client.get(SEARCH, params={"q": "x", f"meta.{key}": "1"}, headers=author.headers), 422,
                       "double quote or a backslash")
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


INTERNALS = "node es-7 at 10.1.2.3 ran out of heap"


class _FailingElasticsearch(BaseHTTPRequestHandler):
    """Says the alias exists, then answers every other request with the server's status and an error body."""

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self) -> None:  # noqa: N802 (the alias exists)
        self._answer(200, {})

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = self.server.status
        error = {"type": "internal_failure_exception", "reason": INTERNALS}
        self._answer(status, {"error": {"root_cause": [error], **error}, "status": status})

    do_GET = do_POST  # noqa: N815

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def failing_elasticsearch(monkeypatch) -> Iterator[ThreadingHTTPServer]:  # noqa: ANN001
    """The Elasticsearch backend configured on a local server that fails searches (status: `server.status`)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FailingElasticsearch)
    server.status = 500
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("POSTROOM_SEARCH_BACKEND", "elasticsearch")
    monkeypatch.setenv("POSTROOM_ELASTICSEARCH_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("POSTROOM_ELASTICSEARCH_INDEX", "postroom-failing")
    get_settings.cache_clear()
    reset_backends()
    yield server
    reset_backends()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status", [500, 501, 403, 401, 404])
def test_elasticsearch_failing_on_its_side_is_a_502_that_shows_no_internals(  # noqa: ANN001
        failing_elasticsearch, client, author, status: int) -> None:  # noqa: ANN001
    failing_elasticsearch.status = status
    response = client.get(SEARCH, params={"q": "payment"}, headers=author.headers)
    expected = 503 if status == 404 else 502  # 404: the alias vanished; the next call re-creates it
    problem = assert_problem(response, expected)
    assert problem["type"] == ("urn:postroom:problem:search-unavailable" if status == 404
                               else "urn:postroom:problem:search-backend")
    for secret in (INTERNALS, "10.1.2.3", "internal_failure_exception", str(status)):
        assert secret not in response.text


def test_a_query_elasticsearch_calls_bad_stays_a_400(failing_elasticsearch, client, author) -> None:  # noqa: ANN001
    failing_elasticsearch.status = 400
    assert_problem(client.get(SEARCH, params={"q": "payment"}, headers=author.headers), 400, "refused")
