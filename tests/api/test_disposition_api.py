"""Disposition over HTTP: sweeping (dry run and real), reading batches and their items, approving with exclusions
(202; the executor carries it out), rejecting, bad requests as problem details, and who may."""

from __future__ import annotations

import datetime as dt

import pytest

from records import clock
from records.service.disposition import execute_approved
from repository.db import get_engine
from tests.api.helpers import API, DOCS, assert_problem, create_document
from tests.records.support import deliver, make_class, start

DISPOSITION = f"{API}/disposition"
BATCHES = f"{DISPOSITION}/batches"


@pytest.fixture
def manager(client, make_user):  # noqa: ANN001, ANN201
    """A records manager with a token; "general" documents are destroyed a year after creation."""
    start()
    account = make_user("rita", "records_manager")
    make_class(account.user, "GEN-1Y", ["general"])
    yield account
    clock.reset()


def _due_documents(client, author, count: int) -> list[str]:  # noqa: ANN001
    ids = [create_document(client, author, f"content {i}".encode(), title=f"Letter {i}")["id"] for i in range(count)]
    deliver()  # classify them
    clock.advance(dt.timedelta(days=400))
    return ids


def _propose(client, manager) -> dict:  # noqa: ANN001
    response = client.post(f"{DISPOSITION}/sweep", headers=manager.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_sweep_review_approve_with_an_exclusion_and_the_batch_is_carried_out(client, manager, author) -> None:  # noqa: ANN001
    kept, gone = _due_documents(client, author, 2)
    dry = client.post(f"{DISPOSITION}/sweep", json={"dry_run": True}, headers=manager.headers)
    assert dry.status_code == 200, dry.text
    assert dry.json()["total"] == 2 and dry.json()["batch_id"] is None
    assert [(c["class_code"], c["action"], c["count"]) for c in dry.json()["counts"]] == [("GEN-1Y", "destroy", 2)]

    response = client.post(f"{DISPOSITION}/sweep", json={}, headers=manager.headers)
    assert response.status_code == 201, response.text
    batch = response.json()
    assert response.headers["Location"] == f"{BATCHES}/{batch['id']}"
    assert batch["state"] == "proposed" and batch["item_count"] == 2 and batch["proposed_by"] == "rita"
    assert {i["document_id"] for i in batch["items"]} == {kept, gone}
    assert {i["title"] for i in batch["items"]} == {"Letter 0", "Letter 1"}
    again = client.post(f"{DISPOSITION}/sweep", headers=manager.headers)
    assert again.status_code == 200 and again.json()["total"] == 0 and again.json()["batch_id"] is None

    listed = client.get(BATCHES, params={"state": "proposed"}, headers=manager.headers).json()
    assert [b["id"] for b in listed["items"]] == [batch["id"]] and listed["next_cursor"] is None
    assert client.get(BATCHES, params={"state": "completed"}, headers=manager.headers).json()["items"] == []
    first = client.get(f"{BATCHES}/{batch['id']}/items", params={"limit": 1}, headers=manager.headers).json()
    second = client.get(f"{BATCHES}/{batch['id']}/items", params={"after": first["next_after"]},
                        headers=manager.headers).json()
    assert [i["document_id"] for i in first["items"] + second["items"]] == sorted([kept, gone])
    assert second["next_after"] is None

    approved = client.post(f"{BATCHES}/{batch['id']}/approve",
                           json={"exclude": [{"document_id": kept, "reason": "complaint still open"}]},
                           headers=manager.headers)
    assert approved.status_code == 202, approved.text
    body = approved.json()
    assert body["state"] == "approved" and body["approved_by"] == "rita"
    assert "postroom records execute" in body["message"]
    assert execute_approved(get_engine()) == 1

    done = client.get(f"{BATCHES}/{batch['id']}", headers=manager.headers).json()
    assert done["state"] == "completed" and done["certificate_id"] and done["outcomes"] == {"destroyed": 1}
    items = {i["document_id"]: i for i in done["items"]}
    assert items[kept]["excluded"] and items[kept]["exclude_reason"] == "complaint still open"
    assert items[gone]["outcome"] == "destroyed"
    assert_problem(client.get(f"{DOCS}/{gone}", headers=author.headers), 404)
    assert client.get(f"{DOCS}/{kept}", headers=author.headers).status_code == 200
    assert client.get(f"{DOCS}/{done['certificate_id']}", headers=manager.headers).status_code == 200


def test_exclude_then_reject(client, manager, author) -> None:  # noqa: ANN001
    doc_a, doc_b = _due_documents(client, author, 2)
    batch = _propose(client, manager)
    excluded = client.post(f"{BATCHES}/{batch['id']}/exclude",
                           json={"document_ids": [doc_a], "reason": "needed for an audit"}, headers=manager.headers)
    assert excluded.status_code == 200, excluded.text
    assert {i["document_id"]: i["excluded"] for i in excluded.json()["items"]} == {doc_a: True, doc_b: False}
    rejected = client.post(f"{BATCHES}/{batch['id']}/reject", json={"reason": "rule under revision"},
                           headers=manager.headers)
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["state"] == "rejected" and rejected.json()["note"] == "rule under revision"
    for doc in (doc_a, doc_b):
        record = client.get(f"{DOCS}/{doc}/record", headers=manager.headers)
        assert record.status_code == 200 and record.json()["disposition"] == "review"
        assert client.get(f"{DOCS}/{doc}", headers=author.headers).status_code == 200


def test_only_records_managers_see_and_decide_batches(client, manager, author, admin) -> None:  # noqa: ANN001
    _due_documents(client, author, 1)
    batch = _propose(client, manager)
    url = f"{BATCHES}/{batch['id']}"
    assert_problem(client.get(url, headers=author.headers), 404)
    assert_problem(client.get(f"{url}/items", headers=author.headers), 404)
    assert client.get(url, headers=manager.headers).status_code == 200
    assert client.get(url, headers=admin.headers).status_code == 200
    assert_problem(client.get(BATCHES, headers=author.headers), 403)
    assert_problem(client.post(f"{DISPOSITION}/sweep", headers=author.headers), 403)
    for action, body in (("approve", {}), ("reject", {"reason": "no"}),
                         ("exclude", {"document_ids": [batch["items"][0]["document_id"]], "reason": "no"})):
        assert_problem(client.post(f"{url}/{action}", json=body, headers=author.headers), 403)
    assert client.get(url, headers=manager.headers).json()["state"] == "proposed"
    assert client.post(f"{url}/approve", headers=manager.headers).status_code == 202


def test_bad_requests_are_problems_and_change_nothing(client, manager, author) -> None:  # noqa: ANN001
    (doc,) = _due_documents(client, author, 1)
    batch = _propose(client, manager)
    url = f"{BATCHES}/{batch['id']}"
    assert_problem(client.post(f"{BATCHES}/no-such-batch/approve", headers=manager.headers), 404)
    assert_problem(client.get(f"{BATCHES}/no-such-batch", headers=manager.headers), 404)
    assert_problem(client.post(f"{url}/approve", json={"exclude": [{"document_id": doc, "reason": ""}]},
                               headers=manager.headers), 422)
    assert_problem(client.post(f"{url}/approve", json={"exclude": [{"document_id": "nope", "reason": "x"}]},
                               headers=manager.headers), 422, "not in disposition batch")
    assert_problem(client.post(f"{url}/exclude", json={"document_ids": [], "reason": "x"},
                               headers=manager.headers), 422)
    assert_problem(client.post(f"{url}/reject", json={}, headers=manager.headers), 422)
    assert_problem(client.post(f"{url}/approve", json={"exclude": [], "force": True}, headers=manager.headers), 422)
    assert_problem(client.post(f"{DISPOSITION}/sweep", json={"dry_run": "maybe"}, headers=manager.headers), 422)
    assert_problem(client.get(BATCHES, params={"state": "lost"}, headers=manager.headers), 422)
    assert_problem(client.get(BATCHES, params={"cursor": "garbage"}, headers=manager.headers), 422, "cursor")
    read = client.get(url, headers=manager.headers).json()
    assert read["state"] == "proposed" and not any(i["excluded"] for i in read["items"])
    assert client.post(f"{url}/approve", headers=manager.headers).status_code == 202
    assert_problem(client.post(f"{url}/approve", headers=manager.headers), 409, "approved")
    assert_problem(client.post(f"{url}/reject", json={"reason": "late"}, headers=manager.headers), 409)
    assert_problem(client.post(f"{url}/exclude", json={"document_ids": [doc], "reason": "late"},
                               headers=manager.headers), 409)
