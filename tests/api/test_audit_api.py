"""The audit trail over HTTP: who may read it, its filters, and what lands in it."""

from __future__ import annotations

from tests.api.helpers import API, DOCS, assert_problem, checkin, create_document, create_type

AUDIT = f"{API}/audit"


def _rows(client, account, **params: str) -> list[dict]:  # noqa: ANN001
    response = client.get(AUDIT, params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_helpdesk_may_not_read_the_audit_trail(client, make_user) -> None:
    helpdesk = make_user("harry", "helpdesk")
    assert_problem(client.get(AUDIT, headers=helpdesk.headers), 403, "auditor")


def test_auditor_reads_the_audit_trail(client, make_user) -> None:
    auditor = make_user("audrey", "auditor")
    response = client.get(AUDIT, headers=auditor.headers)
    assert response.status_code == 200
    assert any(r["action"] == "user.created" for r in response.json()["items"])


def test_audit_filters_by_object_id(client, author, make_user) -> None:
    auditor = make_user("audrey", "auditor")
    wanted = create_document(client, author, b"one")["id"]
    create_document(client, author, b"two")
    rows = _rows(client, auditor, object_id=wanted)
    assert [r["action"] for r in rows] == ["document.created"]
    assert rows[0]["object_id"] == wanted
    assert rows[0]["actor"] == "alice"


def test_audit_filters_by_actor(client, author, make_user) -> None:
    auditor = make_user("audrey", "auditor")
    bob = make_user("bob", "author")
    create_document(client, author, b"alice's")
    bobs = create_document(client, bob, b"bob's")["id"]
    rows = _rows(client, auditor, actor="bob")
    assert [(r["action"], r["object_id"]) for r in rows] == [("document.created", bobs)]


def test_lifecycle_of_a_document_is_audited_in_order(client, author, make_user) -> None:
    auditor = make_user("audrey", "auditor")
    doc_id = create_document(client, author, b"v1")["id"]
    client.post(f"{DOCS}/{doc_id}/checkout", headers=author.headers)
    checkin(client, author, doc_id, b"v2")
    client.patch(f"{DOCS}/{doc_id}", json={"title": "renamed"}, headers=author.headers)
    client.delete(f"{DOCS}/{doc_id}", headers=author.headers)
    client.post(f"{DOCS}/{doc_id}/restore", headers=author.headers)
    actions = [r["action"] for r in _rows(client, auditor, object_id=doc_id)]
    assert actions == ["document.created", "document.checked_out", "document.checked_in", "document.updated",
                       "document.trashed", "document.restored"]


def test_denied_read_appears_as_access_denied(client, admin, make_user) -> None:
    auditor = make_user("audrey", "auditor")
    helpdesk = make_user("harry", "helpdesk")
    create_type(client, admin, "hr", read_roles=["records_manager"], write_roles=["records_manager"])
    doc_id = create_document(client, admin, b"salary", document_type="hr")["id"]
    assert client.get(f"{DOCS}/{doc_id}", headers=helpdesk.headers).status_code == 404
    rows = _rows(client, auditor, object_id=doc_id, action="access.denied")
    assert len(rows) == 1
    assert rows[0]["actor"] == "harry"
    assert rows[0]["details"] == {"attempted": "read"}


def test_refused_audit_read_is_itself_audited(client, make_user) -> None:
    auditor = make_user("audrey", "auditor")
    helpdesk = make_user("harry", "helpdesk")
    client.get(AUDIT, headers=helpdesk.headers)
    rows = _rows(client, auditor, actor="harry", action="access.denied")
    assert len(rows) == 1


def test_audit_rows_are_hash_chained(client, author, make_user) -> None:
    auditor = make_user("audrey", "auditor")
    create_document(client, author)
    rows = _rows(client, auditor)
    assert len(rows) >= 3
    for before, after in zip(rows, rows[1:], strict=False):
        assert after["seq"] > before["seq"]
        assert after["prev_hash"] == before["hash"]


def test_audit_pages_with_next_after(client, make_user) -> None:
    auditor = make_user("audrey", "auditor")
    for name in ("u1", "u2", "u3"):
        make_user(name, "helpdesk")
    everything = _rows(client, auditor, limit="1000")
    first = client.get(AUDIT, params={"limit": "2"}, headers=auditor.headers).json()
    assert len(first["items"]) == 2
    rest = _rows(client, auditor, after=str(first["next_after"]), limit="1000")
    assert [r["seq"] for r in first["items"] + rest] == [r["seq"] for r in everything]
