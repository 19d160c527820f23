"""Erasure requests through the HTTP API on SQLite and PostgreSQL: the report, what erased and kept documents
look like afterwards to whom, the blobs gone after the commit, Idempotency-Key, permissions in pairs, bad input."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from records import clock
from records.models import ErasureRequest, Tombstone
from repository.db import transaction
from repository.models import DocumentVersion
from repository.runtime import get_runtime
from tests.api.helpers import API, DOCS, assert_problem
from tests.records import erasure_support
from tests.records.erasure_support import LEGAL_BASIS, Scenario


@pytest.fixture
def sc(client, make_user) -> Scenario:  # noqa: ANN001
    clock.reset()
    yield erasure_support.build(make_user)
    clock.reset()


def _url(customer_id: str) -> str:
    return f"{API}/customers/{customer_id}/erasure"


def _requests() -> int:
    with transaction(readonly=True) as s:
        return s.execute(select(func.count()).select_from(ErasureRequest)).scalar_one()


def test_an_erasure_request_answers_with_its_report(client, sc: Scenario) -> None:  # noqa: ANN001
    with transaction(readonly=True) as s:
        plain_blobs = list(s.execute(select(DocumentVersion.blob_key)
                                     .where(DocumentVersion.document_id == sc.plain)).scalars())
    response = client.post(_url(sc.customer_id), json={"reference": "DSAR-7"}, headers=sc.manager.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["Location"] == f"{API}/records/erasures/{body['id']}"
    assert (body["customer_id"], body["reference"], body["requested_by"]) == (sc.customer_id, "DSAR-7", "rita")
    assert (body["erased_count"], body["kept_count"]) == (2, 3)
    assert {e["document_id"]: e["type"] for e in body["erased"]} == {sc.plain: "general", sc.unrecorded: "letter"}
    kept = {k["document_id"]: k for k in body["kept"]}
    assert (kept[sc.held]["reason"], kept[sc.held]["holds"], kept[sc.held]["until"]) == \
        ("legal_hold", [sc.hold_id], None)
    assert (kept[sc.obligation]["reason"], kept[sc.obligation]["legal_basis"]) == ("legal_obligation", LEGAL_BASIS)
    assert dt.datetime.fromisoformat(kept[sc.obligation]["until"]) == sc.obligation_due
    assert kept[sc.record]["reason"] == "retention"
    # The erased document is gone for everyone, its blobs deleted once the request committed.
    assert client.get(f"{DOCS}/{sc.plain}", headers=sc.manager.headers).status_code == 404
    assert client.get(f"{DOCS}/{sc.plain}/content", headers=sc.manager.headers).status_code == 404
    assert plain_blobs and not any(get_runtime().store.exists(k) for k in plain_blobs)
    with transaction(readonly=True) as s:
        assert s.get(Tombstone, sc.plain).action == "erasure"


def test_kept_documents_are_hidden_from_everyone_but_records_managers(client, sc: Scenario) -> None:  # noqa: ANN001
    assert client.get(f"{DOCS}/{sc.held}", headers=sc.helpdesk.headers).status_code == 200  # before
    assert client.post(_url(sc.customer_id), headers=sc.manager.headers).status_code == 201
    for account in (sc.helpdesk, sc.author):
        assert_problem(client.get(f"{DOCS}/{sc.held}", headers=account.headers), 404)
        assert client.get(f"{DOCS}/{sc.held}/content", headers=account.headers).status_code == 404
        listed = client.get(DOCS, params={"customer_id": sc.customer_id}, headers=account.headers)
        assert listed.status_code == 200 and listed.json()["items"] == []
    assert client.get(f"{DOCS}/{sc.held}", headers=sc.manager.headers).status_code == 200
    content = client.get(f"{DOCS}/{sc.held}/content", headers=sc.manager.headers)
    assert (content.status_code, content.content) == (200, b"held content")
    listed = client.get(DOCS, params={"customer_id": sc.customer_id}, headers=sc.manager.headers).json()["items"]
    assert {d["id"] for d in listed} == {sc.held, sc.obligation, sc.record}


def test_the_same_idempotency_key_returns_the_same_report(client, sc: Scenario) -> None:  # noqa: ANN001
    headers = {**sc.manager.headers, "Idempotency-Key": "dsar-7"}
    first = client.post(_url(sc.customer_id), json={"reference": "DSAR-7"}, headers=headers)
    again = client.post(_url(sc.customer_id), json={"reference": "DSAR-7"}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert _requests() == 1
    other = client.post(_url(sc.customer_id), json={"reference": "DSAR-8"}, headers=headers)
    assert_problem(other, 409)


def test_erasure_reports_are_read_by_records_managers_alone(client, sc: Scenario) -> None:  # noqa: ANN001
    made = client.post(_url(sc.customer_id), headers=sc.manager.headers).json()
    read = client.get(f"{API}/records/erasures/{made['id']}", headers=sc.manager.headers)
    assert read.status_code == 200 and read.json() == made
    listed = client.get(f"{API}/customers/{sc.customer_id}/erasures", headers=sc.manager.headers)
    assert [(r["id"], r["erased_count"], r["kept_count"]) for r in listed.json()] == [(made["id"], 2, 3)]
    for account in (sc.helpdesk, sc.author):
        assert_problem(client.get(f"{API}/records/erasures/{made['id']}", headers=account.headers), 404)
        assert_problem(client.get(f"{API}/customers/{sc.customer_id}/erasures", headers=account.headers), 404)
    assert_problem(client.get(f"{API}/records/erasures/nope", headers=sc.manager.headers), 404)


def test_only_records_managers_may_request_erasure(client, sc: Scenario) -> None:  # noqa: ANN001
    for account in (sc.helpdesk, sc.author):
        assert_problem(client.post(_url(sc.customer_id), headers=account.headers), 403, "records_manager")
    assert _requests() == 0
    assert client.get(f"{DOCS}/{sc.plain}", headers=sc.helpdesk.headers).status_code == 200
    assert client.post(_url(sc.customer_id), headers=sc.manager.headers).status_code == 201


def test_unknown_customers_and_bad_bodies_are_refused_without_changes(client, sc: Scenario) -> None:  # noqa: ANN001
    assert_problem(client.post(_url("no-such-customer"), headers=sc.manager.headers), 404, "customer")
    assert_problem(client.get(f"{API}/customers/no-such-customer/erasures", headers=sc.manager.headers), 404)
    for body in ({"reference": "x" * 201}, {"reference": "two\nlines"}, {"reason": "x"}, ["DSAR"]):
        assert_problem(client.post(_url(sc.customer_id), json=body, headers=sc.manager.headers), 422)
    assert _requests() == 0
    assert client.get(f"{DOCS}/{sc.plain}", headers=sc.helpdesk.headers).status_code == 200
