"""Legal holds over HTTP: opening, adding documents, reading, releasing, bad bodies as problem details, who may,
and a held document's DELETE refused until every hold on it is released."""

from __future__ import annotations

import uuid

import pytest

from tests.api.helpers import API, assert_problem, create_customer, create_document

HOLDS = f"{API}/holds"


@pytest.fixture
def manager(client, make_user):  # noqa: ANN001, ANN201
    """A records manager with a token."""
    return make_user("rita", "records_manager")


def open_hold(client, manager, name: str = "Smith v. Bank") -> dict:  # noqa: ANN001
    response = client.post(HOLDS, json={"name": name, "reason": "litigation expected", "matter_ref": "M-42"},
                           headers=manager.headers)
    assert response.status_code == 201, response.text
    return response.json()


def hold_documents(client, manager, hold_id: str, **body) -> dict:  # noqa: ANN001, ANN003
    response = client.post(f"{HOLDS}/{hold_id}/items", json=body, headers=manager.headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_open_a_hold_idempotently_and_read_it_back(client, manager) -> None:  # noqa: ANN001
    body = {"name": "Smith v. Bank", "reason": "litigation expected", "matter_ref": "M-42"}
    key = {"Idempotency-Key": "hold-1"}
    first = client.post(HOLDS, json=body, headers={**manager.headers, **key})
    assert first.status_code == 201, first.text
    created = first.json()
    assert first.headers["Location"] == f"{HOLDS}/{created['id']}"
    assert created["state"] == "active" and created["created_by"] == "rita" and created["item_count"] == 0
    again = client.post(HOLDS, json=body, headers={**manager.headers, **key})
    assert again.status_code == 201 and again.json()["id"] == created["id"]
    assert again.headers["Idempotent-Replayed"] == "true"

    listed = client.get(HOLDS, headers=manager.headers).json()
    assert [h["id"] for h in listed["items"]] == [created["id"]] and listed["next_cursor"] is None
    read = client.get(f"{HOLDS}/{created['id']}", headers=manager.headers)
    assert read.status_code == 200 and read.json()["name"] == "Smith v. Bank" and read.json()["items"] == []


def test_add_by_ids_customer_and_query_and_page_the_items(client, manager, author) -> None:  # noqa: ANN001
    customer = create_customer(client, author)
    doc_a = create_document(client, author, customer_id=customer["id"], metadata={"policy": "P-1"})
    doc_b = create_document(client, author, metadata={"policy": "P-1"})
    doc_c = create_document(client, author, metadata={"policy": "P-2"})
    hold = open_hold(client, manager)

    by_id = hold_documents(client, manager, hold["id"], document_ids=[doc_c["id"]])
    assert by_id["added"] == [doc_c["id"]] and by_id["added_count"] == 1 and by_id["not_found"] == []
    by_customer = hold_documents(client, manager, hold["id"], customer_id=customer["id"])
    assert by_customer["added"] == [doc_a["id"]] and by_customer["source"] == "customer"
    by_query = hold_documents(client, manager, hold["id"], query={"meta": {"policy": "P-1"}})
    assert by_query["added"] == [doc_b["id"]] and by_query["already_held_here"] == [doc_a["id"]]

    detail = client.get(f"{HOLDS}/{hold['id']}", headers=manager.headers).json()
    assert detail["item_count"] == 3 and detail["active_count"] == 3
    assert {i["document_id"]: i["versions"] for i in detail["items"]} == {
        doc_a["id"]: ["1.0"], doc_b["id"]: ["1.0"], doc_c["id"]: ["1.0"]}
    first = client.get(f"{HOLDS}/{hold['id']}/items", params={"limit": 2}, headers=manager.headers).json()
    rest = client.get(f"{HOLDS}/{hold['id']}/items", params={"after": first["next_after"]},
                      headers=manager.headers).json()
    assert len(first["items"]) == 2 and len(rest["items"]) == 1 and rest["next_after"] is None
    assert sorted(i["document_id"] for i in first["items"] + rest["items"]) == sorted(
        d["id"] for d in (doc_a, doc_b, doc_c))


def test_deleting_a_held_document_is_409_until_every_hold_is_released(client, manager, author,  # noqa: ANN001
                                                                       admin) -> None:
    doc = create_document(client, author)
    first, second = open_hold(client, manager, "first"), open_hold(client, manager, "second")
    for hold in (first, second):
        hold_documents(client, manager, hold["id"], document_ids=[doc["id"]])

    refused = assert_problem(client.delete(f"{API}/documents/{doc['id']}", headers=author.headers), 409,
                             "legal hold", first["id"], second["id"])
    assert sorted(refused["holds"]) == sorted([first["id"], second["id"]])

    released = client.post(f"{HOLDS}/{first['id']}/release", json={"reason": "first matter settled"},
                           headers=manager.headers)
    assert released.status_code == 200, released.text
    body = released.json()
    assert body["state"] == "released" and body["release_reason"] == "first matter settled"
    assert body["active_count"] == 0 and body["items"][0]["released_at"] is not None
    still = assert_problem(client.delete(f"{API}/documents/{doc['id']}", headers=author.headers), 409,
                           second["id"])
    assert still["holds"] == [second["id"]]

    client.post(f"{HOLDS}/{second['id']}/release", json={"reason": "done"}, headers=manager.headers)
    assert client.delete(f"{API}/documents/{doc['id']}", headers=author.headers).status_code == 204
    trail = client.get(f"{API}/audit", params={"object_id": first["id"]}, headers=admin.headers).json()["items"]
    assert [e["action"] for e in trail] == ["hold.created", "hold.items_added", "hold.released"]
    assert trail[-1]["actor"] == "rita" and trail[-1]["details"]["reason"] == "first matter settled"


def test_released_hold_refuses_items_and_a_second_release(client, manager, author) -> None:  # noqa: ANN001
    doc = create_document(client, author)
    hold = open_hold(client, manager)
    assert client.post(f"{HOLDS}/{hold['id']}/release", json={"reason": "done"},
                       headers=manager.headers).status_code == 200
    assert_problem(client.post(f"{HOLDS}/{hold['id']}/items", json={"document_ids": [doc["id"]]},
                               headers=manager.headers), 409, "released")
    assert_problem(client.post(f"{HOLDS}/{hold['id']}/release", json={"reason": "again"}, headers=manager.headers),
                   409, "already released")
    assert client.get(HOLDS, params={"state": "released"}, headers=manager.headers).json()["items"][0]["id"] == \
        hold["id"]


@pytest.mark.parametrize(("body", "words"), [
    ({"name": "no reason"}, ["reason"]),
    ({"name": "", "reason": "why"}, ["name"]),
    ({"name": "x" * 201, "reason": "why"}, ["name"]),
    ({"name": "ok", "reason": "why", "colour": "red"}, ["colour"]),
])
def test_bad_hold_bodies_are_422_problems(client, manager, body, words) -> None:  # noqa: ANN001
    assert_problem(client.post(HOLDS, json=body, headers=manager.headers), 422, *words)
    assert client.get(HOLDS, headers=manager.headers).json()["items"] == []


@pytest.mark.parametrize(("body", "words"), [
    ({}, ["exactly one"]),
    ({"document_ids": ["x"], "customer_id": "y"}, ["exactly one"]),
    ({"document_ids": []}, ["document_ids"]),
    ({"document_ids": "not-a-list"}, ["document_ids"]),
    ({"customer_id": "no-such-customer"}, ["no customer"]),
    ({"query": {"colour": "red"}}, ["query", "colour"]),
    ({"query": {"created_from": "yesterday"}}, ["query.created_from"]),
    ({"query": {"meta": {"k": {"nested": 1}}}}, ["query.meta.k"]),
    ({"query": "policy=P-1"}, ["query"]),
])
def test_bad_item_bodies_are_422_problems_and_add_nothing(client, manager, author, body, words) -> None:  # noqa: ANN001
    create_document(client, author)
    hold = open_hold(client, manager)
    assert_problem(client.post(f"{HOLDS}/{hold['id']}/items", json=body, headers=manager.headers), 422, *words)
    assert client.get(f"{HOLDS}/{hold['id']}", headers=manager.headers).json()["item_count"] == 0


def test_unknown_ids_are_listed_and_nothing_is_held(client, manager, author) -> None:  # noqa: ANN001
    doc = create_document(client, author)
    hold = open_hold(client, manager)
    missing = str(uuid.uuid4())
    problem = assert_problem(client.post(f"{HOLDS}/{hold['id']}/items", json={"document_ids": [doc["id"], missing]},
                                         headers=manager.headers), 422, missing)
    assert problem["not_found"] == [missing]
    assert client.get(f"{HOLDS}/{hold['id']}", headers=manager.headers).json()["item_count"] == 0
    assert client.delete(f"{API}/documents/{doc['id']}", headers=author.headers).status_code == 204


def test_release_needs_a_reason(client, manager) -> None:  # noqa: ANN001
    hold = open_hold(client, manager)
    assert_problem(client.post(f"{HOLDS}/{hold['id']}/release", json={}, headers=manager.headers), 422, "reason")
    assert_problem(client.post(f"{HOLDS}/{hold['id']}/release", json={"reason": "  "}, headers=manager.headers),
                   422, "reason")
    assert client.get(f"{HOLDS}/{hold['id']}", headers=manager.headers).json()["state"] == "active"


def test_holds_are_invisible_to_everyone_but_records_managers_and_admins(client, manager, author,  # noqa: ANN001
                                                                          admin) -> None:
    doc = create_document(client, author)
    hold = open_hold(client, manager)
    url = f"{HOLDS}/{hold['id']}"
    assert_problem(client.get(url, headers=author.headers), 404, "not found")
    assert client.get(url, headers=manager.headers).status_code == 200
    assert client.get(url, headers=admin.headers).status_code == 200
    assert_problem(client.get(f"{url}/items", headers=author.headers), 404)
    assert_problem(client.post(f"{url}/items", json={"document_ids": [doc["id"]]}, headers=author.headers), 404)
    assert_problem(client.post(f"{url}/release", json={"reason": "mine"}, headers=author.headers), 404)
    assert_problem(client.post(HOLDS, json={"name": "n", "reason": "r"}, headers=author.headers), 403)
    assert_problem(client.get(HOLDS, headers=author.headers), 403)
    assert client.get(url, headers=manager.headers).json()["state"] == "active"
    assert client.get(f"{HOLDS}/{uuid.uuid4()}", headers=manager.headers).status_code == 404
