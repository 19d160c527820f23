"""E-discovery over HTTP: a matter from opening to a downloaded production, holds from a saved search, the chain
of custody, who may do what (404 for outsiders, 403 for auditors' changes), a closed matter's 409s, and bad input
as problem details."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import zipfile

import pytest
from sqlalchemy import update

from repository.db import get_engine, transaction
from search.matters import jobs
from search.matters.models import MatterEvent
from tests.api.helpers import API, assert_problem, create_customer, create_document
from tests.search.matters_support import parse_dat, parse_opt, pdf
from tests.search.support import settle

MATTERS = f"{API}/matters"


@pytest.fixture
def manager(client, make_user):  # noqa: ANN001, ANN201
    """A records manager with a token."""
    return make_user("rita", "records_manager")


@pytest.fixture
def documents(client, author):  # noqa: ANN001, ANN201
    """Indexed documents: two about fraud (one a two-page PDF letter), one not."""
    letter = create_document(client, author, pdf("Fraud notice", "Page two"), title="Notice", filename="n.pdf",
                             document_type="letter")
    memo = create_document(client, author, b"Memo: fraud at the branch.", title="Memo", metadata={"branch": "leeds"})
    create_document(client, author, b"Lunch menu.", title="Menu")
    settle()
    return {"letter": letter["id"], "memo": memo["id"]}


def _open(client, manager, **body) -> dict:  # noqa: ANN001, ANN003
    response = client.post(MATTERS, json={"name": "Smith v. Bank", "bates_prefix": "SMITH", **body},
                           headers=manager.headers)
    assert response.status_code == 201, response.text
    return response.json()


def _save(client, manager, matter_id: str, **body) -> dict:  # noqa: ANN001, ANN003
    response = client.post(f"{MATTERS}/{matter_id}/searches", json={"name": "fraud", "q": "fraud", **body},
                           headers=manager.headers)
    assert response.status_code == 201, response.text
    return response.json()


def _build() -> None:
    while jobs.export_pending(get_engine()):
        pass


def test_a_matter_from_opening_to_a_downloaded_production(client, manager, author, documents) -> None:  # noqa: ANN001
    key = {"Idempotency-Key": "matter-1"}
    first = client.post(MATTERS, json={"name": "Smith v. Bank", "bates_prefix": "SMITH", "custodians": ["alice"]},
                        headers={**manager.headers, **key})
    assert first.status_code == 201, first.text
    matter = first.json()
    assert first.headers["Location"] == f"{MATTERS}/{matter['id']}"
    assert matter["status"] == "open" and matter["custodians"] == ["alice"] and matter["custody"]["ok"]
    again = client.post(MATTERS, json={"name": "Smith v. Bank", "bates_prefix": "SMITH", "custodians": ["alice"]},
                        headers={**manager.headers, **key})
    assert again.json()["id"] == matter["id"] and again.headers["Idempotent-Replayed"] == "true"
    base = f"{MATTERS}/{matter['id']}"

    saved = _save(client, manager, matter["id"])
    ran = client.post(f"{base}/searches/{saved['id']}/run", json={"sort": "oldest"}, headers=manager.headers)
    assert ran.status_code == 200 and [h["document_id"] for h in ran.json()["hits"]] == [documents["letter"],
                                                                                         documents["memo"]]
    hold_key = {**manager.headers, "Idempotency-Key": "hold-1"}
    held = client.post(f"{base}/holds", json={"search_id": saved["id"]}, headers=hold_key)
    assert held.status_code == 201, held.text
    replayed = client.post(f"{base}/holds", json={"search_id": saved["id"]}, headers=hold_key)
    assert replayed.json()["hold_id"] == held.json()["hold_id"]  # a retry places no second hold
    assert {d["document_id"]: d["versions"] for d in held.json()["documents"]} == {
        documents["letter"]: ["1.0"], documents["memo"]: ["1.0"]}
    hold = client.get(f"{API}/holds/{held.json()['hold_id']}", headers=manager.headers).json()
    assert hold["matter_ref"] == matter["id"] and hold["item_count"] == 2

    asked = client.post(f"{base}/exports", json={"search_id": saved["id"]}, headers=manager.headers)
    assert asked.status_code == 202, asked.text
    export = asked.json()
    assert asked.headers["Location"] == f"{base}/exports/{export['id']}"
    assert export["state"] == "queued" and export["download"] is None
    assert_problem(client.get(f"{base}/exports/{export['id']}/download", headers=manager.headers), 409, "queued")
    _build()
    status = client.get(f"{base}/exports/{export['id']}", headers=manager.headers).json()
    assert status["state"] == "completed" and (status["bates_begin"], status["bates_end"]) == ("SMITH000001",
                                                                                              "SMITH000003")
    got = client.get(status["download"], headers=manager.headers)
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    assert hashlib.sha256(got.content).hexdigest() == status["zip_sha256"]
    assert got.headers["Repr-Digest"] == f"sha-256=:{base64.b64encode(bytes.fromhex(status['zip_sha256'])).decode()}:"
    zf = zipfile.ZipFile(io.BytesIO(got.content))
    records = parse_dat(zf.read("DATA/export.dat"))
    assert [(r["BEGBATES"], r["ENDBATES"], r["TITLE"]) for r in records] == [
        ("SMITH000001", "SMITH000002", "Notice"), ("SMITH000003", "SMITH000003", "Memo")]
    assert [line[0] for line in parse_opt(zf.read("DATA/export.opt"))] == ["SMITH000001", "SMITH000002"]

    detail = client.get(base, headers=manager.headers).json()
    assert [s["id"] for s in detail["searches"]] == [saved["id"]]
    assert [(h["hold_id"], h["state"], h["documents"]) for h in detail["holds"]] == [
        (held.json()["hold_id"], "active", 2)]
    assert [e["id"] for e in detail["exports"]] == [export["id"]] and detail["custody"]["ok"]
    chain = client.get(f"{base}/custody", headers=manager.headers).json()
    assert [e["action"] for e in chain["events"]] == ["created", "search.added", "search.run", "hold.placed",
                                                      "export.requested", "export.completed", "export.downloaded"]
    assert chain["verification"] == {"ok": True, "checked": 7, "bad_seq": None, "reason": None}
    listed = client.get(MATTERS, headers=manager.headers).json()
    assert [m["id"] for m in listed["items"]] == [matter["id"]] and listed["next_cursor"] is None


def test_who_may_see_and_change_a_matter(client, manager, make_user, documents) -> None:  # noqa: ANN001
    auditor, helpdesk = make_user("audrey", "auditor"), make_user("hal", "helpdesk")
    matter = _open(client, manager)
    base = f"{MATTERS}/{matter['id']}"
    saved = _save(client, manager, matter["id"])
    export = client.post(f"{base}/exports", json={"document_ids": [documents["memo"]]}, headers=manager.headers)
    _build()
    export_url = f"{base}/exports/{export.json()['id']}"
    reads = [("GET", base), ("GET", f"{base}/custody"), ("GET", export_url), ("GET", MATTERS)]
    changes = [("POST", MATTERS, {"name": "Mine"}), ("PATCH", base, {"description": "x"}),
               ("POST", f"{base}/searches", {"name": "s", "q": "x"}),
               ("POST", f"{base}/searches/{saved['id']}/run", {}),
               ("POST", f"{base}/holds", {"search_id": saved["id"]}),
               ("POST", f"{base}/exports", {"search_id": saved["id"]})]
    for method, url in reads:  # auditors read; outsiders are told it does not exist
        assert client.request(method, url, headers=auditor.headers).status_code == 200, url
        assert_problem(client.request(method, url, headers=helpdesk.headers), 404)
    for method, url, body in changes:
        assert_problem(client.request(method, url, json=body, headers=auditor.headers), 403)
        assert_problem(client.request(method, url, json=body, headers=helpdesk.headers), 404)
    assert_problem(client.get(f"{export_url}/download", headers=auditor.headers), 403)
    assert_problem(client.get(f"{export_url}/download", headers=helpdesk.headers), 404)
    assert client.get(f"{export_url}/download", headers=manager.headers).status_code == 200
    assert client.get(MATTERS, headers=manager.headers).status_code == 200


def test_a_closed_matter_answers_409_to_every_change(client, manager, documents) -> None:  # noqa: ANN001
    matter = _open(client, manager)
    base = f"{MATTERS}/{matter['id']}"
    saved = _save(client, manager, matter["id"])
    closed = client.patch(base, json={"status": "closed"}, headers=manager.headers)
    assert closed.status_code == 200 and closed.json()["status"] == "closed" and closed.json()["closed_by"] == "rita"
    for method, url, body in [("PATCH", base, {"status": "open"}), ("PATCH", base, {"description": "x"}),
                              ("POST", f"{base}/searches", {"name": "late", "q": "x"}),
                              ("POST", f"{base}/searches/{saved['id']}/run", {}),
                              ("POST", f"{base}/holds", {"search_id": saved["id"]}),
                              ("POST", f"{base}/exports", {"document_ids": [documents["memo"]]})]:
        assert_problem(client.request(method, url, json=body, headers=manager.headers), 409, "closed")
    assert client.get(base, headers=manager.headers).json()["status"] == "closed"
    assert [e["action"] for e in client.get(f"{base}/custody", headers=manager.headers).json()["events"]] == [
        "created", "search.added", "closed"]


def test_a_matter_with_holds_in_force_closes_only_with_them_released(client, manager, documents) -> None:  # noqa: ANN001
    matter = _open(client, manager)
    base = f"{MATTERS}/{matter['id']}"
    saved = _save(client, manager, matter["id"])
    hold_id = client.post(f"{base}/holds", json={"search_id": saved["id"]}, headers=manager.headers).json()["hold_id"]
    refused = client.patch(base, json={"status": "closed"}, headers=manager.headers)
    assert_problem(refused, 409, hold_id)
    assert_problem(client.patch(base, json={"status": "closed", "release_holds": True}, headers=manager.headers),
                   422, "release_reason")
    assert_problem(client.patch(base, json={"description": "x", "release_holds": True, "release_reason": "done"},
                                headers=manager.headers), 422, "status=closed")
    assert client.get(base, headers=manager.headers).json()["status"] == "open"  # nothing changed by the refusals
    assert client.get(f"/api/v1/holds/{hold_id}", headers=manager.headers).json()["state"] == "active"
    closed = client.patch(base, json={"status": "closed", "release_holds": True, "release_reason": "case settled"},
                          headers=manager.headers)
    assert closed.status_code == 200, closed.text
    assert [(h["hold_id"], h["state"]) for h in closed.json()["holds"]] == [(hold_id, "released")]
    released = client.get(f"/api/v1/holds/{hold_id}", headers=manager.headers).json()
    assert (released["state"], released["release_reason"]) == ("released", "case settled")
    events = client.get(f"{base}/custody", headers=manager.headers).json()["events"]
    assert events[-1]["action"] == "closed" and events[-1]["details"]["released_holds"] == [hold_id]


def test_an_expired_export_answers_410_and_says_so(client, manager, documents) -> None:  # noqa: ANN001
    matter = _open(client, manager)
    export = client.post(f"{MATTERS}/{matter['id']}/exports", json={"document_ids": [documents["memo"]]},
                         headers=manager.headers).json()
    _build()
    url = f"{MATTERS}/{matter['id']}/exports/{export['id']}"
    status = client.get(url, headers=manager.headers).json()
    expires = dt.datetime.fromisoformat(status["expires_at"])
    assert status["state"] == "completed" and expires > dt.datetime.now(dt.UTC) + dt.timedelta(days=29)
    assert jobs.expire_exports(get_engine(), now=expires + dt.timedelta(seconds=1)) == 1
    status = client.get(url, headers=manager.headers).json()
    assert (status["state"], status["download"], status["expires_at"]) == ("expired", None, None)
    assert status["expired_at"] is not None
    assert_problem(client.get(f"{url}/download", headers=manager.headers), 410, "request a new export")


def test_bad_input_is_a_problem_not_a_500(client, manager, documents) -> None:  # noqa: ANN001
    assert_problem(client.post(MATTERS, json={"name": ""}, headers=manager.headers), 422)
    assert_problem(client.post(MATTERS, json={"name": "M", "bates_prefix": "ab"}, headers=manager.headers), 422,
                   "bates_prefix")
    assert_problem(client.post(MATTERS, json={"name": "M", "custodians": ["ghost"]}, headers=manager.headers), 422,
                   "ghost")
    assert_problem(client.post(MATTERS, json={"name": "M", "date_from": "2024-02-01", "date_to": "2024-01-01"},
                               headers=manager.headers), 422, "date_to")
    assert_problem(client.post(MATTERS, json={"name": "M", "colour": "red"}, headers=manager.headers), 422)
    matter = _open(client, manager)
    base = f"{MATTERS}/{matter['id']}"
    malformed = client.post(f"{base}/searches", json={"name": "bad", "q": "fraud AND"}, headers=manager.headers)
    assert assert_problem(malformed, 400, "position")["position"] == 9
    assert_problem(client.post(f"{base}/searches", json={"name": "m", "meta": {"branch": 1}},
                               headers=manager.headers), 422)
    assert_problem(client.post(f"{base}/searches", json={"name": "q", "meta": {'br"anch': "x"}},
                               headers=manager.headers), 422, "double quote")
    assert_problem(client.post(f"{base}/searches", json={"name": "t", "created_from": "2024-01-01T00:00:00"},
                               headers=manager.headers), 422)
    assert_problem(client.patch(base, json={}, headers=manager.headers), 422, "nothing to change")
    assert_problem(client.patch(base, json={"status": "archived"}, headers=manager.headers), 422)
    assert_problem(client.post(f"{base}/holds", json={"search_id": "nope"}, headers=manager.headers), 404)
    saved = _save(client, manager, matter["id"])
    assert_problem(client.post(f"{base}/exports", json={}, headers=manager.headers), 422, "exactly one")
    assert_problem(client.post(f"{base}/exports", json={"search_id": saved["id"], "document_ids": ["x"]},
                               headers=manager.headers), 422, "exactly one")
    assert_problem(client.post(f"{base}/exports", json={"document_ids": []}, headers=manager.headers), 422)
    assert_problem(client.post(f"{base}/exports", json={"document_ids": ["nope"]}, headers=manager.headers), 422,
                   "nope")
    assert_problem(client.get(f"{base}/exports/nope", headers=manager.headers), 404)
    assert_problem(client.get(f"{MATTERS}/nope", headers=manager.headers), 404)
    assert_problem(client.get(f"{base}/custody?after=-1", headers=manager.headers), 422)
    assert [e["action"] for e in client.get(f"{base}/custody", headers=manager.headers).json()["events"]] == [
        "created", "search.added"]


def test_a_matter_s_scope_can_change_and_each_change_is_in_its_custody(client, manager, make_user,  # noqa: ANN001
                                                                       author) -> None:  # noqa: ANN001
    customer = create_customer(client, make_user("root", "admin"))
    matter = _open(client, manager, custodians=["alice"], date_from="2024-01-01")
    base = f"{MATTERS}/{matter['id']}"
    changed = client.patch(base, json={"name": "Smith v. Bank plc", "custodians": ["alice", "rita"],
                                       "customers": [customer["id"]], "date_to": "2024-12-31"},
                           headers=manager.headers)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["name"], body["custodians"], body["customers"], body["date_from"], body["date_to"]) == \
        ("Smith v. Bank plc", ["alice", "rita"], [customer["id"]], "2024-01-01", "2024-12-31")
    cleared = client.patch(base, json={"date_from": None, "custodians": []}, headers=manager.headers).json()
    assert (cleared["date_from"], cleared["custodians"]) == (None, [])
    events = client.get(f"{base}/custody", headers=manager.headers).json()["events"]
    assert [e["action"] for e in events] == ["created", "updated", "updated"]
    assert events[1]["details"]["custodians"] == ["alice", "rita"]
    assert events[1]["details"]["previous"]["custodians"] == ["alice"]
    assert events[2]["details"]["previous"]["date_from"] == "2024-01-01"
    # Bad changes are refused and change nothing.
    assert_problem(client.patch(base, json={"custodians": ["ghost"]}, headers=manager.headers), 422, "ghost")
    assert_problem(client.patch(base, json={"date_from": "2025-01-01"}, headers=manager.headers), 422, "date_to")
    assert_problem(client.patch(base, json={"name": None}, headers=manager.headers), 422, "name")
    assert_problem(client.patch(base, json={"customers": ["x" * 36]}, headers=manager.headers), 422)
    assert_problem(client.patch(base, json={"name": "x"}, headers=author.headers), 404)
    assert client.get(base, headers=manager.headers).json()["name"] == "Smith v. Bank plc"
    assert len(client.get(f"{base}/custody", headers=manager.headers).json()["events"]) == 3
    # Before the first export, a new name with the prefix left to Postroom gives the prefix of the new name.
    renamed = client.patch(base, json={"name": "Jones v. Bank", "bates_prefix": None}, headers=manager.headers)
    assert renamed.status_code == 200 and renamed.json()["bates_prefix"] == "JONESVBA"


def test_a_tampered_chain_of_custody_shows_in_the_matter(client, manager) -> None:  # noqa: ANN001
    matter = _open(client, manager)
    _save(client, manager, matter["id"])
    with transaction() as session:
        session.execute(update(MatterEvent).where(MatterEvent.matter_id == matter["id"], MatterEvent.seq == 1)
                        .values(actor="mallory"))
    verification = client.get(f"{MATTERS}/{matter['id']}/custody", headers=manager.headers).json()["verification"]
    assert verification["ok"] is False and verification["bad_seq"] == 1 and "event 1" in verification["reason"]
    assert client.get(f"{MATTERS}/{matter['id']}", headers=manager.headers).json()["custody"]["ok"] is False
