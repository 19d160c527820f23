"""The customer registry over HTTP."""

from __future__ import annotations

import uuid

from tests.api.helpers import API, assert_problem, create_customer

CUSTOMERS = f"{API}/customers"


def test_create_customer_answers_201_with_an_id(client, author) -> None:
    response = client.post(CUSTOMERS, json={"external_ref": "C-100", "name": "Ada Lovelace"}, headers=author.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"]
    assert body["external_ref"] == "C-100"
    assert body["name"] == "Ada Lovelace"


def test_customer_can_be_read_back_by_id(client, author, make_user) -> None:
    created = create_customer(client, author, "C-7", "Grace Hopper")
    helpdesk = make_user("harry", "helpdesk")
    response = client.get(f"{CUSTOMERS}/{created['id']}", headers=helpdesk.headers)
    assert response.status_code == 200
    assert response.json() == created


def test_unknown_customer_id_is_404_problem(client, author) -> None:
    assert_problem(client.get(f"{CUSTOMERS}/{uuid.uuid4()}", headers=author.headers), 404, "customer")


def test_duplicate_external_ref_is_409_and_keeps_the_first(client, author) -> None:
    first = create_customer(client, author, "C-1", "First")
    response = client.post(CUSTOMERS, json={"external_ref": "C-1", "name": "Second"}, headers=author.headers)
    assert_problem(response, 409, "C-1")
    found = client.get(CUSTOMERS, params={"q": "C-1"}, headers=author.headers).json()
    assert [c["id"] for c in found] == [first["id"]]
    assert found[0]["name"] == "First"


def test_missing_field_is_422_naming_the_field(client, author) -> None:
    response = client.post(CUSTOMERS, json={"name": "No Ref"}, headers=author.headers)
    body = assert_problem(response, 422, "external_ref")
    assert [e["field"] for e in body["errors"]] == ["external_ref"]


def test_empty_name_is_422_naming_the_field(client, author) -> None:
    response = client.post(CUSTOMERS, json={"external_ref": "C-2", "name": ""}, headers=author.headers)
    body = assert_problem(response, 422, "name")
    assert [e["field"] for e in body["errors"]] == ["name"]


def test_body_that_is_not_json_is_422_not_500(client, author) -> None:
    response = client.post(CUSTOMERS, content=b"{not json", headers={**author.headers,
                                                                      "Content-Type": "application/json"})
    assert_problem(response, 422)
    assert client.get(CUSTOMERS, headers=author.headers).json() == []


def test_search_finds_by_name_and_by_external_ref(client, author) -> None:
    ada = create_customer(client, author, "REF-ADA", "Ada Lovelace")
    grace = create_customer(client, author, "REF-GRACE", "Grace Hopper")
    by_name = client.get(CUSTOMERS, params={"q": "lovelace"}, headers=author.headers).json()
    assert [c["id"] for c in by_name] == [ada["id"]]
    by_ref = client.get(CUSTOMERS, params={"q": "REF-GR"}, headers=author.headers).json()
    assert [c["id"] for c in by_ref] == [grace["id"]]
    everyone = client.get(CUSTOMERS, headers=author.headers).json()
    assert {c["id"] for c in everyone} == {ada["id"], grace["id"]}


def test_search_without_match_is_empty(client, author) -> None:
    create_customer(client, author, "REF-1", "Ada Lovelace")
    assert client.get(CUSTOMERS, params={"q": "zzz"}, headers=author.headers).json() == []


def test_customers_need_a_token(client) -> None:
    assert_problem(client.post(CUSTOMERS, json={"external_ref": "C-1", "name": "X"}), 401)
