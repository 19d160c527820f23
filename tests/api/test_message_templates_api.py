"""Message templates through the HTTP API: create, read, change with If-Match, delete, preview; every bad
template a 422 naming its part; scopes unique; permissions in pairs; every change audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from repository.db import transaction
from repository.models import AuditEntry, DocumentType
from tests.api.helpers import API, assert_problem
from tests.output.letters_support import approved_template, customer, pdf_of, quick_letter

URL = f"{API}/message-templates"
EMAIL = {"channel": "email", "category": "statement", "subject": "Your statement {{ letter.reference }}",
         "text_body": "{{ customer.salutation }},\n\nyour statement is attached."}


def _create(client, account, **fields) -> dict:  # noqa: ANN001, ANN003
    response = client.post(URL, json={**EMAIL, **fields}, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


def _readers(type_name: str, roles: list[str]) -> None:
    """Only these roles may read documents of this type from now on."""
    with transaction() as s:
        s.execute(update(DocumentType).where(DocumentType.name == type_name).values(read_roles=roles))


def test_an_author_creates_reads_changes_and_deletes_a_template(client, author) -> None:  # noqa: ANN001
    made = _create(client, author, locale="de_de")
    assert (made["category"], made["locale"], made["revision"], made["html_body"]) == ("statement", "de-DE", 1, None)
    read = client.get(f"{URL}/{made['id']}", headers=author.headers)
    assert read.status_code == 200 and read.json() == made and read.headers["ETag"] == '"1"'
    changed = client.patch(f"{URL}/{made['id']}", json={"html_body": "<p>{{ customer.name }}</p>"},
                           headers={**author.headers, "If-Match": '"1"'})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["revision"], changed.json()["html_body"], changed.headers["ETag"]) == \
        (2, "<p>{{ customer.name }}</p>", '"2"')
    stale = client.patch(f"{URL}/{made['id']}", json={"subject": "x"}, headers={**author.headers, "If-Match": '"1"'})
    assert_problem(stale, 412, "revision 2")
    assert [t["id"] for t in client.get(URL, headers=author.headers).json()] == [made["id"]]
    assert client.delete(f"{URL}/{made['id']}", headers={**author.headers, "If-Match": '"2"'}).status_code == 204
    assert_problem(client.get(f"{URL}/{made['id']}", headers=author.headers), 404)
    with transaction(readonly=True) as s:
        trail = s.execute(select(AuditEntry.action, AuditEntry.details).where(AuditEntry.object_id == made["id"])
                          .order_by(AuditEntry.seq)).all()
    assert [action for action, _d in trail] == ["message_template.created", "message_template.updated",
                                                "message_template.deleted"]
    # Every wording the template had can be read back from the trail.
    assert trail[0].details["parts"]["subject"] == EMAIL["subject"]
    assert trail[1].details["previous"] == {"html_body": None}
    assert trail[1].details["changed"] == {"html_body": "<p>{{ customer.name }}</p>"}
    assert trail[2].details["previous"]["html_body"] == "<p>{{ customer.name }}</p>"


def test_one_template_per_channel_category_and_locale(client, author) -> None:  # noqa: ANN001
    first = _create(client, author)
    assert_problem(client.post(URL, json={**EMAIL, "category": " Statement "}, headers=author.headers), 409,
                   first["id"])
    _create(client, author, locale="fr")  # another locale is another scope
    _create(client, author, category="")  # so is every category


@pytest.mark.parametrize(("fields", "status", "words"), [
    ({"subject": ""}, 422, ["subject"]),
    ({"channel": "sms", "subject": "Hi", "text_body": "x"}, 422, ["text only"]),
    ({"channel": "sms", "subject": "", "html_body": "<p>x</p>", "text_body": "x"}, 422, ["text only"]),
    ({"text_body": "  "}, 422, ["text_body"]),
    ({"text_body": "Hello {{ customer.name "}, 422, ["does not parse"]),
    ({"html_body": "{{ ''.__class__.__mro__ }}"}, 422, ["forbids"]),
    ({"text_body": "{% include 'secrets.txt' %}"}, 422, ["include"]),
    ({"subject": "{{ customer.name|nosuchfilter }}"}, 422, ["nosuchfilter"]),
    ({"text_body": "{% for x in customer.nothing %}{{ x }}{% endfor %}"}, 422, ["nothing"]),
    ({"text_body": "{{ 'x' * 100000000 }}"}, 422, ["sandbox"]),
    ({"locale": "not a locale!"}, 422, ["locale"]),
    ({"category": "Letters & more"}, 422, ["category"]),
    ({"channel": "fax"}, 422, []),
    ({"surprise": 1}, 422, []),
])
def test_a_bad_template_is_refused_saying_what_and_where(client, author, fields, status, words) -> None:  # noqa: ANN001
    body = assert_problem(client.post(URL, json={**EMAIL, **fields}, headers=author.headers), status, *words)
    assert "Traceback" not in body["detail"]
    assert client.get(URL, headers=author.headers).json() == []  # nothing was written


def test_a_syntax_error_names_the_part_and_line(client, author) -> None:  # noqa: ANN001
    body = assert_problem(client.post(URL, json={**EMAIL, "html_body": "<p>\n{% if %}</p>"}, headers=author.headers),
                          422)
    assert (body.get("part"), body.get("line")) == ("html", 2)


def test_a_change_is_checked_like_a_new_template(client, author) -> None:  # noqa: ANN001
    made = _create(client, author)
    assert_problem(client.patch(f"{URL}/{made['id']}", json={"text_body": "{{ oops"}, headers=author.headers), 422)
    assert_problem(client.patch(f"{URL}/{made['id']}", json={"channel": "sms"}, headers=author.headers), 422)
    assert client.get(f"{URL}/{made['id']}", headers=author.headers).json() == made


def test_who_may_see_and_change_templates(client, author, make_user) -> None:  # noqa: ANN001
    made = _create(client, author)
    helpdesk, outsider = make_user("harry", "helpdesk"), make_user("carol", "complaint_handler")
    # The help desk reads them (what customers are sent) but may not change them.
    assert client.get(f"{URL}/{made['id']}", headers=helpdesk.headers).status_code == 200
    assert_problem(client.patch(f"{URL}/{made['id']}", json={"subject": "x"}, headers=helpdesk.headers), 403)
    assert_problem(client.post(URL, json={**EMAIL, "locale": "fr"}, headers=helpdesk.headers), 403)
    assert_problem(client.delete(f"{URL}/{made['id']}", headers=helpdesk.headers), 403)
    # A user who may not read correspondence templates sees none.
    _readers("template", ["author", "approver", "helpdesk"])
    assert_problem(client.get(f"{URL}/{made['id']}", headers=outsider.headers), 404)
    assert client.get(URL, headers=outsider.headers).json() == []
    assert_problem(client.patch(f"{URL}/{made['id']}", json={"subject": "x"}, headers=outsider.headers), 404)
    assert_problem(client.get(f"{URL}/{made['id']}/preview", headers=outsider.headers), 404)
    assert_problem(client.post(URL, json={**EMAIL, "locale": "de"}, headers=outsider.headers), 404)
    assert_problem(client.delete(f"{URL}/{made['id']}", headers=outsider.headers), 404)
    assert client.get(f"{URL}/{made['id']}", headers=author.headers).json()["subject"] == EMAIL["subject"]


def test_an_sms_preview_shows_the_text_the_provider_gets_before_its_link(client, author) -> None:  # noqa: ANN001
    made = _create(client, author, channel="sms", subject="",
                   text_body="New letter {{ letter.reference }}: {{ portal_url }}?src=sms. Thanks")
    shown = client.get(f"{URL}/{made['id']}/preview", headers=author.headers)
    assert shown.status_code == 200, shown.text
    # The channel appends the link itself, so the template's copy (and what stuck to it) is taken out.
    assert shown.json()["text"] == "New letter L-SAMPLE-0001: Thanks"


def test_preview_with_a_sample_or_a_real_letter(client, author, make_user) -> None:  # noqa: ANN001
    approver, admin = make_user("bob", "approver"), make_user("root", "admin")
    made = _create(client, author, html_body="<p>{% if sensitive %}Read it at {{ portal_url }}{% else %}"
                                             "Attached{% endif %}, {{ customer.name }}</p>")
    sample = client.get(f"{URL}/{made['id']}/preview", headers=author.headers)
    assert sample.status_code == 200, sample.text
    assert sample.json() == {"subject": "Your statement L-SAMPLE-0001",
                             "text": "Dear Alex Sample,\n\nyour statement is attached.",
                             "html": "<p>Attached, Alex Sample</p>"}
    approved_template(author, approver)
    customer_id = customer(admin, "C-1", name="Ada <Lovelace>")
    letter_id = quick_letter(author, customer_id, pdf_of(1, "x"))
    real = client.get(f"{URL}/{made['id']}/preview", params={"letter_id": letter_id, "sensitive": "true"},
                      headers=author.headers)
    assert real.status_code == 200, real.text
    assert real.json()["html"].startswith("<p>Read it at http") and real.json()["html"].endswith(
        ", Ada &lt;Lovelace&gt;</p>")
    helpdesk = make_user("harry", "helpdesk")
    assert client.get(f"{URL}/{made['id']}/preview", params={"letter_id": letter_id},
                      headers=helpdesk.headers).status_code == 200
    _readers("letter", ["author"])  # the help desk still reads templates, no longer letters
    assert_problem(client.get(f"{URL}/{made['id']}/preview", params={"letter_id": letter_id},
                              headers=helpdesk.headers), 404)
