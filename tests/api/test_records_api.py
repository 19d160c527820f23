"""Records management over HTTP: the file plan, a document's records state, declaration and its effects,
business events."""

from __future__ import annotations

import pytest

from tests.api.helpers import API, DOCS, assert_problem, create_customer, create_document

CLASSES = f"{API}/records/classes"
RULE = {"code": "GEN-01", "title": "General correspondence", "trigger": "created", "period_value": 6,
        "period_unit": "years", "cutoff": "calendar_year", "action": "destroy", "document_types": ["general"]}


@pytest.fixture
def manager(client, make_user):  # noqa: ANN001, ANN201
    return make_user("rita", "records_manager")


def _deliver() -> None:
    from tests.records.support import deliver

    deliver()


def test_a_records_manager_builds_the_file_plan(client, manager) -> None:  # noqa: ANN001
    created = client.post(CLASSES, json=RULE, headers=manager.headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["code"] == "GEN-01" and body["document_types"] == ["general"] and body["rule_revision"] == 1
    child = client.post(CLASSES, json={**RULE, "code": "GEN-01.1", "parent": "GEN-01", "document_types": []},
                        headers=manager.headers)
    assert child.json()["parent_id"] == body["id"]
    listed = client.get(CLASSES, headers=manager.headers).json()
    assert [c["code"] for c in listed] == ["GEN-01", "GEN-01.1"]
    changed = client.patch(f"{CLASSES}/GEN-01", json={"period_value": 7, "reason": "new policy"},
                           headers=manager.headers)
    assert changed.status_code == 200 and changed.json()["rule_revision"] == 2


def test_file_plan_input_errors_are_problems(client, manager) -> None:  # noqa: ANN001
    assert_problem(client.post(CLASSES, json={**RULE, "action": "burn"}, headers=manager.headers), 422, "action")
    assert_problem(client.post(CLASSES, json={**RULE, "document_types": ["nope"]}, headers=manager.headers),
                   422, "nope")
    assert client.get(CLASSES, headers=manager.headers).json() == []  # nothing half-made
    client.post(CLASSES, json=RULE, headers=manager.headers)
    assert_problem(client.post(CLASSES, json=RULE, headers=manager.headers), 409, "GEN-01")
    assert_problem(client.patch(f"{CLASSES}/GEN-01", json={"period_value": 2}, headers=manager.headers), 422,
                   "reason")
    assert_problem(client.get(f"{CLASSES}/NOPE", headers=manager.headers), 404, "NOPE")


def test_only_records_managers_see_and_change_the_file_plan(client, manager, author) -> None:  # noqa: ANN001
    assert_problem(client.post(CLASSES, json=RULE, headers=author.headers), 403, "records_manager")
    assert_problem(client.get(CLASSES, headers=author.headers), 403)
    assert client.get(CLASSES, headers=manager.headers).status_code == 200


def test_a_declared_record_is_frozen_over_http(client, manager, author) -> None:  # noqa: ANN001
    client.post(CLASSES, json=RULE, headers=manager.headers)
    doc = create_document(client, author, b"the contract")
    _deliver()
    record = client.get(f"{DOCS}/{doc['id']}/record", headers=author.headers).json()
    assert record["classified"] and record["class_code"] == "GEN-01" and not record["declared"]
    assert record["due_at"].startswith(str(int(record["trigger_at"][:4]) + 7))
    declared = client.post(f"{DOCS}/{doc['id']}/record", headers=author.headers)
    assert declared.status_code == 200 and declared.json()["declared"]
    assert_problem(client.post(f"{DOCS}/{doc['id']}/checkout", headers=author.headers), 409, "record")
    assert_problem(client.delete(f"{DOCS}/{doc['id']}", headers=author.headers), 409, "record")
    assert_problem(client.post(f"{DOCS}/{doc['id']}/record", headers=author.headers), 409, "already declared")
    content = client.get(f"{DOCS}/{doc['id']}/content", headers=author.headers)
    assert content.content == b"the contract"


def test_a_document_the_caller_cannot_read_has_no_visible_record(client, manager, author, make_user) -> None:  # noqa: ANN001
    from tests.api.helpers import create_type

    admin = make_user("root", "admin")
    create_type(client, admin, "hr-file", read_roles=["author"], write_roles=["author"])
    doc = create_document(client, author, b"salary", document_type="hr-file")
    helpdesk = make_user("hugo", "helpdesk")
    assert_problem(client.get(f"{DOCS}/{doc['id']}/record", headers=helpdesk.headers), 404)
    assert_problem(client.post(f"{DOCS}/{doc['id']}/record", headers=helpdesk.headers), 404)
    assert client.get(f"{DOCS}/{doc['id']}/record", headers=author.headers).status_code == 200


def test_reclassify_and_business_events(client, manager, author) -> None:  # noqa: ANN001
    client.post(CLASSES, json=RULE, headers=manager.headers)
    client.post(CLASSES, json={**RULE, "code": "ACC", "trigger": "event", "event_type": "account_closed",
                               "document_types": []}, headers=manager.headers)
    customer = create_customer(client, author)
    doc = create_document(client, author, customer_id=customer["id"])
    _deliver()
    assert_problem(client.post(f"{DOCS}/{doc['id']}/record/reclassify", json={"class": "ACC", "reason": "x"},
                               headers=author.headers), 403)
    moved = client.post(f"{DOCS}/{doc['id']}/record/reclassify", json={"class": "ACC", "reason": "account file"},
                        headers=manager.headers)
    assert moved.status_code == 200 and moved.json()["class_code"] == "ACC" and moved.json()["due_at"] is None
    event = client.post(f"{API}/records/events", json={"type": "account_closed", "customer_id": customer["id"],
                                                       "occurred_at": "2025-03-31T17:00:00Z"},
                        headers=manager.headers)
    assert event.status_code == 201 and event.json()["documents_started"] == 1
    record = client.get(f"{DOCS}/{doc['id']}/record", headers=manager.headers).json()
    assert record["due_at"].startswith("2032-01-01")
    assert_problem(client.post(f"{API}/records/events", json={"type": "account_closed", "customer_id": customer["id"],
                                                              "occurred_at": "2025-03-31T17:00:00"},
                               headers=manager.headers), 422, "timezone")
