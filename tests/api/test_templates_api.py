"""Templates and content blocks through the HTTP API: registration, check-in checks, the approval workflow,
rules, previews, and permissions in pairs."""

from __future__ import annotations

import io
import json

import docx as python_docx
import pytest
from sqlalchemy import update

from repository.db import transaction
from repository.models import DocumentType
from tests.api.helpers import API, PROBLEM, checkin
from tests.correspondence.docx_factory import make_docx

TEMPLATES, BLOCKS = f"{API}/templates", f"{API}/content-blocks"
SCHEMA = {"type": "object", "properties": {"balance": {"type": "number"}}, "required": ["balance"]}
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture
def approver(client, make_user):  # noqa: ANN001, ANN201
    """An approver who writes nothing."""
    return make_user("bob", "approver")


def _post(client, account, url: str = TEMPLATES, *, paragraphs: list[str] | None = None,  # noqa: ANN001, ANN202
          fields: dict | None = None, data: bytes | None = None):
    form = {"name": "statement", "locale": "en-GB", "category": "statement", "schema": json.dumps(SCHEMA),
            "sample_data": json.dumps({"balance": 10})}
    form.update(fields or {})
    body = data if data is not None else make_docx(paragraphs or ["Your balance is {{ balance }}."])
    return client.post(url, data=form, files={"file": ("statement.docx", body, "application/octet-stream")},
                       headers=account.headers)


def _create(client, account, url: str = TEMPLATES, **kwargs) -> dict:  # noqa: ANN001
    response = _post(client, account, url, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()


def _edit(client, account, template: dict, paragraphs: list[str]):  # noqa: ANN001, ANN202
    document_id = template["document_id"]
    assert client.post(f"{API}/documents/{document_id}/checkout", headers=account.headers).status_code == 200
    return checkin(client, account, document_id, make_docx(paragraphs))


def test_create_list_and_get_a_template(client, author) -> None:  # noqa: ANN001
    created = _create(client, author)
    assert created["active_version"] is None and created["current_version"] == "1.0"
    assert created["schema"] == SCHEMA
    listed = client.get(TEMPLATES, headers=author.headers).json()
    assert [t["id"] for t in listed] == [created["id"]]
    detail = client.get(f"{TEMPLATES}/{created['id']}", headers=author.headers)
    assert detail.status_code == 200 and detail.headers["ETag"] == '"1"'
    assert [(v["version"], v["state"]) for v in detail.json()["versions"]] == [("1.0", "draft")]
    assert detail.json()["rules"] == []


def test_bad_registrations_are_4xx_and_store_nothing(client, author) -> None:  # noqa: ANN001
    cases = [
        ({"schema": "{not json"}, None, 422),
        ({"schema": "1" * 5000}, None, 422),
        ({"sample_data": "[1, 2]"}, None, 422),
        ({"schema": json.dumps({"type": "object", "properties": {"a": {"type": 7}}})}, None, 422),
        ({"locale": "zz-nowhere"}, None, 422),
        ({"category": "gossip"}, None, 422),
        ({}, b"plain text, not a docx", 415),
        ({}, make_docx(["Hello {{ name "]), 422),
    ]
    for fields, data, status in cases:
        response = _post(client, author, fields=fields, data=data)
        assert response.status_code == status, (fields, response.text)
        assert response.headers["content-type"] == PROBLEM
    assert client.get(TEMPLATES, headers=author.headers).json() == []
    assert client.get(f"{API}/documents", headers=author.headers,
                      params={"document_type": "template"}).json()["items"] == []


def test_check_in_with_broken_jinja_names_the_tag_and_paragraph(client, author) -> None:  # noqa: ANN001
    template = _create(client, author)
    response = _edit(client, author, template, ["Dear customer,", "Pay {% if balance > 0 %}now"])
    assert response.status_code == 422, response.text
    problem = response.json()
    assert "if" in problem["tag"] and "Pay" in problem["paragraph"]
    response = checkin(client, author, template["document_id"], make_docx(["{{ block('nowhere') }}"]))
    assert response.status_code == 422 and "nowhere" in response.json()["detail"]
    assert response.json()["tag"] == "{{ block('nowhere') }}"
    fixed = checkin(client, author, template["document_id"], make_docx(["Pay {{ balance }} now"]))
    assert fixed.status_code == 201, fixed.text


def test_the_approval_workflow_over_http(client, author, approver, admin) -> None:  # noqa: ANN001
    template = _create(client, author)
    url = f"{TEMPLATES}/{template['id']}"
    early = client.post(f"{url}/approve", headers=approver.headers)
    assert early.status_code == 409 and "draft" in early.json()["detail"]
    submitted = client.post(f"{url}/submit", json={"comment": "ready"}, headers=author.headers)
    assert submitted.status_code == 200 and submitted.json()["state"] == "submitted"
    own = client.post(f"{url}/approve", headers=author.headers)
    assert own.status_code == 409 and "approver role" in own.json()["detail"]
    approved = client.post(f"{url}/approve", json={"comment": "ok"}, headers=approver.headers)
    assert approved.status_code == 200 and approved.json()["active"] is True
    assert _edit(client, author, template, ["New wording {{ balance }}"]).status_code == 201
    client.post(f"{url}/submit", headers=author.headers)
    rejected = client.post(f"{url}/reject", json={"comment": "too blunt"}, headers=approver.headers)
    assert rejected.json() == {"id": template["id"], "version": "1.1", "state": "rejected", "active": False}
    detail = client.get(url, headers=author.headers).json()
    assert detail["active_version"] == "1.0"
    assert [(v["version"], v["state"]) for v in detail["versions"]] == [("1.0", "approved"), ("1.1", "rejected")]
    assert detail["versions"][1]["history"][-1]["comment"] == "too blunt"
    assert client.post(f"{url}/rollback", json={"version": "1.1", "reason": "x"},
                       headers=admin.headers).status_code == 409


def test_four_eyes_for_an_approver_who_wrote_the_version(client, make_user) -> None:  # noqa: ANN001
    both = make_user("carol", "author", "approver")
    other = make_user("dave", "approver")
    template = _create(client, both)
    url = f"{TEMPLATES}/{template['id']}"
    client.post(f"{url}/submit", headers=both.headers)
    own = client.post(f"{url}/approve", headers=both.headers)
    assert own.status_code == 409 and "four eyes" in own.json()["detail"]
    assert client.post(f"{url}/approve", headers=other.headers).status_code == 200


def test_submit_lists_undeclared_variables(client, author) -> None:  # noqa: ANN001
    template = _create(client, author, paragraphs=["{{ balance }} {{ account_number }}"])
    response = client.post(f"{TEMPLATES}/{template['id']}/submit", headers=author.headers)
    assert response.status_code == 422 and response.json()["undeclared"] == ["account_number"]


def test_preview_returns_a_docx_with_sample_or_given_data(client, author, approver, make_user) -> None:  # noqa: ANN001
    template = _create(client, author)
    url = f"{TEMPLATES}/{template['id']}/preview"
    stored = client.post(url, headers=approver.headers)
    assert stored.status_code == 200 and stored.headers["content-type"] == DOCX
    assert "Your balance is 10." in [p.text for p in python_docx.Document(io.BytesIO(stored.content)).paragraphs]
    given = client.post(url, json={"data": {"balance": 77}}, headers=author.headers)
    assert "Your balance is 77." in [p.text for p in python_docx.Document(io.BytesIO(given.content)).paragraphs]
    bad = client.post(url, json={"data": {"balance": "lots"}}, headers=author.headers)
    assert bad.status_code == 422 and bad.json()["problems"][0]["path"] == "balance"
    helpdesk = make_user("harry", "helpdesk")
    assert client.post(url, headers=helpdesk.headers).status_code == 403


@pytest.mark.parametrize("payload", [
    "{{ cycler.__init__.__globals__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
])
def test_a_template_reaching_out_of_the_sandbox_is_refused_on_upload(client, author, payload: str) -> None:  # noqa: ANN001
    response = _post(client, author, paragraphs=[payload], fields={"schema": "{}", "sample_data": "{}"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM and response.json()["tag"] == payload
    assert client.get(TEMPLATES, headers=author.headers).json() == []


def test_an_escape_built_at_run_time_fails_the_preview_with_a_422(client, author) -> None:  # noqa: ANN001
    payload = "{{ (cycler | attr(first)) | attr(second) }}"  # the names come from the letter data
    template = _create(client, author, paragraphs=[payload], fields={"schema": "{}", "sample_data": "{}"})
    response = client.post(f"{TEMPLATES}/{template['id']}/preview", headers=author.headers,
                           json={"data": {"first": "__init__", "second": "__globals__"}})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM and "Traceback" not in response.text
    assert "<function" not in response.text and "builtins" not in response.text


def test_content_blocks_rules_and_used_by(client, author, approver) -> None:  # noqa: ANN001
    block = _create(client, author, BLOCKS, paragraphs=["Premium customers get more."],
                    fields={"name": "promo", "category": ""})
    client.post(f"{BLOCKS}/{block['id']}/submit", headers=author.headers)
    assert client.post(f"{BLOCKS}/{block['id']}/approve", headers=approver.headers).status_code == 200
    template = _create(client, author, paragraphs=["Balance {{ balance }}", "{{ slot('offer') }}"])
    rules_url = f"{TEMPLATES}/{template['id']}/rules"
    bad = client.put(rules_url, json=[{"slot": "offer", "condition": "customer.segment.tier ==", "block": "promo"}],
                     headers=author.headers)
    assert bad.status_code == 422
    put = client.put(rules_url, json=[{"slot": "offer", "condition": "customer.segment.tier == 'premium'",
                                       "block": "promo"}], headers=author.headers)
    assert put.status_code == 200 and put.json()[0]["position"] == 1
    used = client.get(f"{BLOCKS}/{block['id']}", headers=author.headers).json()["used_by"]
    assert [u["id"] for u in used] == [template["id"]]


def test_patch_needs_a_fresh_etag(client, author) -> None:  # noqa: ANN001
    template = _create(client, author)
    url = f"{TEMPLATES}/{template['id']}"
    ok = client.patch(url, json={"description": "Monthly statement"}, headers={**author.headers, "If-Match": '"1"'})
    assert ok.status_code == 200 and ok.headers["ETag"] == '"2"'
    stale = client.patch(url, json={"description": "x"}, headers={**author.headers, "If-Match": '"1"'})
    assert stale.status_code == 412
    unknown = client.patch(url, json={"name": "renamed"}, headers=author.headers)
    assert unknown.status_code == 422


def test_permissions_in_pairs(client, author, make_user) -> None:  # noqa: ANN001
    template = _create(client, author)
    url = f"{TEMPLATES}/{template['id']}"
    helpdesk, auditor = make_user("harry", "helpdesk"), make_user("audrey", "auditor")
    with transaction() as s:  # an admin narrows who may read templates to authors and help desk
        s.execute(update(DocumentType).where(DocumentType.name == "template")
                  .values(read_roles=["author", "helpdesk"]))
    assert client.get(url, headers=helpdesk.headers).status_code == 200
    assert client.get(url, headers=auditor.headers).status_code == 404
    assert client.get(TEMPLATES, headers=auditor.headers).json() == []
    assert client.post(f"{url}/submit", headers=auditor.headers).status_code == 404
    assert client.post(f"{url}/submit", headers=helpdesk.headers).status_code == 403
    assert client.post(f"{url}/submit", headers=author.headers).status_code == 200
