"""The customer registry over HTTP."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from sqlalchemy import select

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


# The profile ------------------------------------------------------------------------------------------------------

ADA = {
    "external_ref": "C-ADA", "name": "Ada Lovelace", "title": "Ms", "salutation": "Dear Ms Lovelace",
    "address": {"lines": ["10 Downing Street"], "city": "London", "postcode": "sw1a2aa", "country": "gb"},
    "email": "Ada@Example.COM", "mobile": "07911 123456", "locale": "en_GB",
    "channel_preferences": {"statements": "email", "marketing": "none"}, "paperless": True,
    "segment": {"tier": "gold", "score": 7},
}


@pytest.fixture
def helpdesk(client, make_user):  # noqa: ANN001, ANN201
    """A help-desk user: may create and change customers."""
    return make_user("harry", "helpdesk")


@pytest.fixture
def approver(client, make_user):  # noqa: ANN001, ANN201
    """Staff who may read customers but not change them."""
    return make_user("april", "approver")


def _create(client, account, body: dict | None = None) -> dict:  # noqa: ANN001
    response = client.post(CUSTOMERS, json=body or ADA, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


def _patch(client, account, customer_id: str, body: dict, etag: str | None = None):  # noqa: ANN001, ANN202
    if etag is None:
        etag = client.get(f"{CUSTOMERS}/{customer_id}", headers=account.headers).headers["etag"]
    return client.patch(f"{CUSTOMERS}/{customer_id}", json=body, headers={**account.headers, "If-Match": etag})


def test_full_profile_is_stored_normalised(client, helpdesk) -> None:
    response = client.post(CUSTOMERS, json=ADA, headers=helpdesk.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["address"] == {"lines": ["10 Downing Street"], "city": "London", "region": None,
                               "postcode": "SW1A 2AA", "country": "GB"}
    assert (body["email"], body["mobile"], body["locale"]) == ("Ada@example.com", "+447911123456", "en-GB")
    assert body["channel_preferences"] == {"marketing": "none", "statements": "email"}
    assert (body["paperless"], body["segment"], body["version"]) == (True, {"score": 7, "tier": "gold"}, 1)
    assert body["address_undeliverable"] is False and body["consents"] == []
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == f"{CUSTOMERS}/{body['id']}"
    got = client.get(f"{CUSTOMERS}/{body['id']}", headers=helpdesk.headers)
    assert got.json() == body and got.headers["etag"] == '"1"'


@pytest.mark.parametrize(("change", "field"), [
    ({"email": "ada@"}, "email"),
    ({"mobile": "+44 20 7946 0000"}, "mobile"),
    ({"mobile": "12345"}, "mobile"),
    ({"locale": "xx-YY"}, "locale"),
    ({"locale": "und"}, "locale"),
    ({"channel_preferences": {"statements": "pigeon"}}, "channel_preferences.statements"),
    ({"address": {"lines": ["1 Main St"], "city": "Springfield"}}, "address.country"),
    ({"address": {"lines": ["1 Main St"], "city": "X", "postcode": "1", "country": "XX"}}, "address.country"),
])
def test_bad_value_is_422_naming_the_field(client, helpdesk, change, field) -> None:
    body = assert_problem(client.post(CUSTOMERS, json={**ADA, **change}, headers=helpdesk.headers), 422, field)
    assert field in [e["field"] for e in body["errors"]]
    assert client.get(CUSTOMERS, headers=helpdesk.headers).json() == []


@pytest.mark.parametrize(("country", "good", "bad"), [
    ("GB", "EC1A 1BB", "EC1A"), ("US", "20500", "2050"), ("DE", "10115", "1011A"), ("FR", "75008", "750080"),
    ("NL", "1012 AB", "0123 AB"),
])
def test_postcode_is_checked_per_country(client, helpdesk, country, good, bad) -> None:
    address = {"lines": ["1 Main Street"], "city": "Town", "country": country}
    body = assert_problem(client.post(CUSTOMERS, json={**ADA, "mobile": None, "address": {**address, "postcode": bad}},
                                      headers=helpdesk.headers), 422, "address.postcode", country)
    assert body["field"] == "address.postcode"
    created = _create(client, helpdesk, {**ADA, "mobile": None, "address": {**address, "postcode": good}})
    assert created["address"]["postcode"] == good


def test_several_bad_fields_are_named_in_one_422(client, helpdesk) -> None:
    bad = {**ADA, "email": "nope", "mobile": "+44 12", "address": {**ADA["address"], "postcode": "12345"}}
    body = assert_problem(client.post(CUSTOMERS, json=bad, headers=helpdesk.headers), 422)
    assert [e["field"] for e in body["errors"]] == ["address.postcode", "email", "mobile"]


def test_unknown_field_is_422(client, helpdesk) -> None:
    body = assert_problem(client.post(CUSTOMERS, json={**ADA, "emial": "x@example.com"}, headers=helpdesk.headers),
                          422, "emial")
    assert [e["field"] for e in body["errors"]] == ["emial"]


def test_patch_changes_only_what_is_sent_and_null_clears(client, helpdesk) -> None:
    ada = _create(client, helpdesk)
    response = _patch(client, helpdesk, ada["id"], {"email": None, "channel_preferences": {"statements": "print"},
                                                    "address": {"lines": ["1 Rue de Rivoli"], "city": "Paris",
                                                                "postcode": "75001", "country": "FR"}}, '"1"')
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["email"] is None and body["mobile"] == "+447911123456"
    assert body["address"] == {"lines": ["1 Rue de Rivoli"], "city": "Paris", "region": None, "postcode": "75001",
                               "country": "FR"}
    assert body["channel_preferences"] == {"statements": "print"}
    assert (body["version"], response.headers["etag"]) == (2, '"2"')


def test_patch_without_if_match_is_428_and_changes_nothing(client, helpdesk) -> None:
    ada = _create(client, helpdesk)
    response = client.patch(f"{CUSTOMERS}/{ada['id']}", json={"name": "X"}, headers=helpdesk.headers)
    assert_problem(response, 428, "If-Match")
    assert client.get(f"{CUSTOMERS}/{ada['id']}", headers=helpdesk.headers).json()["name"] == "Ada Lovelace"


def test_patch_with_a_stale_etag_is_412_and_keeps_the_other_change(client, helpdesk) -> None:
    ada = _create(client, helpdesk)
    assert _patch(client, helpdesk, ada["id"], {"name": "First"}, '"1"').status_code == 200
    assert_problem(_patch(client, helpdesk, ada["id"], {"name": "Second"}, '"1"'), 412)
    assert_problem(_patch(client, helpdesk, ada["id"], {"name": "Second"}, "W/1"), 412)
    assert client.get(f"{CUSTOMERS}/{ada['id']}", headers=helpdesk.headers).json()["name"] == "First"


def test_patch_with_bad_value_is_422_naming_it(client, helpdesk) -> None:
    ada = _create(client, helpdesk)
    body = assert_problem(_patch(client, helpdesk, ada["id"], {"mobile": "not a phone"}), 422, "mobile")
    assert body["field"] == "mobile"
    assert_problem(_patch(client, helpdesk, ada["id"], {"name": None}), 422, "name")


def test_patch_of_unknown_customer_is_404(client, helpdesk) -> None:
    assert_problem(_patch(client, helpdesk, str(uuid.uuid4()), {"name": "X"}, '"1"'), 404, "customer")


# Permission pairs: every staff member reads customers; admin and helpdesk change them (403 for the others, who
# can see the customer, as for a missing role elsewhere).

def test_staff_without_the_role_cannot_create(client, approver) -> None:
    assert_problem(client.post(CUSTOMERS, json=ADA, headers=approver.headers), 403, "helpdesk")


def test_helpdesk_and_admin_can_create(client, helpdesk, admin) -> None:
    _create(client, helpdesk)
    _create(client, admin, {**ADA, "external_ref": "C-2"})


def test_staff_without_the_role_cannot_patch(client, helpdesk, approver, author) -> None:
    ada = _create(client, helpdesk)
    for account in (approver, author):
        assert_problem(_patch(client, account, ada["id"], {"name": "X"}, '"1"'), 403)
    assert client.get(f"{CUSTOMERS}/{ada['id']}", headers=approver.headers).json()["name"] == "Ada Lovelace"


def test_helpdesk_can_patch(client, helpdesk) -> None:
    ada = _create(client, helpdesk)
    assert _patch(client, helpdesk, ada["id"], {"name": "X"}, '"1"').status_code == 200


def test_every_staff_role_can_read(client, helpdesk, make_user) -> None:
    ada = _create(client, helpdesk)
    for role in ("auditor", "records_manager", "complaint_handler", "approver", "author"):
        account = make_user(f"u-{role.replace('_', '-')}", role)
        assert client.get(f"{CUSTOMERS}/{ada['id']}", headers=account.headers).status_code == 200
        assert [c["id"] for c in client.get(CUSTOMERS, headers=account.headers).json()] == [ada["id"]]


def test_staff_without_the_role_cannot_record_consent_or_flag(client, helpdesk, approver) -> None:
    ada = _create(client, helpdesk)
    url = f"{CUSTOMERS}/{ada['id']}"
    consent = {"purpose": "marketing-email", "granted": True, "source": "web-form"}
    assert_problem(client.post(f"{url}/consents", json=consent, headers=approver.headers), 403)
    assert_problem(client.post(f"{url}/undeliverable", json={"reason": "gone"}, headers=approver.headers), 403)
    got = client.get(url, headers=approver.headers).json()
    assert got["consents"] == [] and got["address_undeliverable"] is False


def test_consents_are_kept_and_the_newest_is_current(client, helpdesk) -> None:
    ada = _create(client, helpdesk)
    url = f"{CUSTOMERS}/{ada['id']}"
    for granted, source in ((True, "web-form"), (False, "call-centre")):
        response = client.post(f"{url}/consents", json={"purpose": "marketing-email", "granted": granted,
                                                        "source": source}, headers=helpdesk.headers)
        assert response.status_code == 201, response.text
        assert response.json()["recorded_by"] == "harry"
    got = client.get(url, headers=helpdesk.headers)
    assert [(c["purpose"], c["granted"], c["source"]) for c in got.json()["consents"]] == [
        ("marketing-email", False, "call-centre")]
    assert got.headers["etag"] == '"3"'
    history = client.get(f"{url}/consents", headers=helpdesk.headers).json()
    assert [c["granted"] for c in history] == [True, False]


def test_undeliverable_flag_is_listed_and_a_new_address_clears_it(client, helpdesk) -> None:
    ada = _create(client, helpdesk)
    grace = _create(client, helpdesk, {**ADA, "external_ref": "C-GRACE", "name": "Grace Hopper"})
    url = f"{CUSTOMERS}/{ada['id']}"
    flagged = client.post(f"{url}/undeliverable", json={"reason": "returned: gone away"}, headers=helpdesk.headers)
    assert flagged.status_code == 200, flagged.text
    assert (flagged.json()["address_undeliverable"], flagged.json()["undeliverable_reason"]) == (
        True, "returned: gone away")
    only = client.get(CUSTOMERS, params={"undeliverable": "true"}, headers=helpdesk.headers).json()
    assert [c["id"] for c in only] == [ada["id"]]
    new_address = {"address": {**ADA["address"], "lines": ["11 Downing Street"]}}
    assert _patch(client, helpdesk, ada["id"], new_address).json()["address_undeliverable"] is False
    client.post(f"{CUSTOMERS}/{grace['id']}/undeliverable", json={"reason": "x"}, headers=helpdesk.headers)
    cleared = client.delete(f"{CUSTOMERS}/{grace['id']}/undeliverable", headers=helpdesk.headers)
    assert cleared.status_code == 200 and cleared.json()["undeliverable_reason"] is None


def test_list_pages_with_the_next_cursor_header(client, helpdesk) -> None:
    made = {_create(client, helpdesk, {"external_ref": f"P-{i}", "name": f"Person {i}"})["id"] for i in range(5)}
    seen, params = [], {"limit": "2"}
    while True:
        response = client.get(CUSTOMERS, params=params, headers=helpdesk.headers)
        seen += [c["id"] for c in response.json()]
        if "x-next-cursor" not in response.headers:
            break
        assert 'rel="next"' in response.headers["link"]
        params = {"limit": "2", "cursor": response.headers["x-next-cursor"]}
    assert sorted(seen) == sorted(made) and len(seen) == 5
    assert_problem(client.get(CUSTOMERS, params={"cursor": "garbage"}, headers=helpdesk.headers), 422, "cursor")


# Bulk import ------------------------------------------------------------------------------------------------------

IMPORT = f"{CUSTOMERS}/import"
CSV = ("external_ref,name,address_line1,city,postcode,country,email,pref.statements\n"
       "I-1,Ada Lovelace,10 Downing Street,London,SW1A 2AA,GB,ada@example.com,email\n"
       "I-2,Grace Hopper,Damrak 1,Amsterdam,1012LG,NL,grace@,\n"
       "I-3,Alan Turing,,,,,,\n")


def _counts(body: dict) -> tuple[int, int, int, int]:
    return body["imported"], body["updated"], body["unchanged"], body["rejected_count"]


def test_import_csv_twice_reports_row_errors_then_all_unchanged(client, helpdesk) -> None:
    first = client.post(IMPORT, files={"file": ("people.csv", CSV.encode(), "text/csv")}, headers=helpdesk.headers)
    assert first.status_code == 200, first.text
    assert _counts(first.json()) == (2, 0, 0, 1)
    assert first.json()["rejected"] == [{"line": 3, "external_ref": "I-2", "errors": [
        {"field": "email", "message": first.json()["rejected"][0]["errors"][0]["message"]}]}]
    again = client.post(IMPORT, content=CSV.encode(), headers={**helpdesk.headers, "Content-Type": "text/csv"})
    assert _counts(again.json()) == (0, 0, 2, 1)
    found = client.get(CUSTOMERS, params={"q": "I-1"}, headers=helpdesk.headers).json()
    assert found[0]["address"]["postcode"] == "SW1A 2AA" and found[0]["version"] == 1


def test_import_jsonl_body_updates_changed_rows(client, helpdesk) -> None:
    client.post(IMPORT, content=CSV.encode(), headers={**helpdesk.headers, "Content-Type": "text/csv"})
    lines = [{"external_ref": "I-1", "name": "Ada King"}, {"external_ref": "I-3", "name": "Alan Turing"},
             {"external_ref": "I-4", "name": "New Person", "address": {"lines": ["1 Main St"], "city": "Berlin",
                                                                     "postcode": "10115", "country": "DE"}}]
    body = "".join(json.dumps(x) + "\n" for x in lines) + "{broken\n"
    response = client.post(IMPORT, content=body.encode(),
                           headers={**helpdesk.headers, "Content-Type": "application/x-ndjson"})
    assert response.status_code == 200, response.text
    assert _counts(response.json()) == (1, 1, 1, 1)
    assert response.json()["rejected"][0]["line"] == 4


def test_import_a_json_array_body_or_file(client, helpdesk) -> None:
    people = [{"external_ref": "J-1", "name": "Ada King"}, {"external_ref": "J-2", "name": "Alan Turing"}, 7]
    response = client.post(IMPORT, content=json.dumps(people).encode(),
                           headers={**helpdesk.headers, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["imported"] == 2 and response.json()["rejected"][0]["line"] == 3
    again = client.post(IMPORT, files={"file": ("people.json", json.dumps(people[:2]).encode(), "application/json")},
                        params={"format": "json"}, headers=helpdesk.headers)
    assert again.status_code == 200 and again.json()["unchanged"] == 2
    broken = client.post(IMPORT, content=json.dumps(people).encode()[:-10],
                         headers={**helpdesk.headers, "Content-Type": "application/json"})
    assert_problem(broken, 422, "well-formed JSON array")


def test_import_without_the_role_is_403_and_imports_nothing(client, approver) -> None:
    response = client.post(IMPORT, files={"file": ("people.csv", CSV.encode(), "text/csv")}, headers=approver.headers)
    assert_problem(response, 403)
    assert client.get(CUSTOMERS, headers=approver.headers).json() == []


def test_import_with_the_role_works(client, admin) -> None:
    response = client.post(IMPORT, files={"file": ("people.csv", CSV.encode(), "text/csv")}, headers=admin.headers)
    assert response.status_code == 200 and response.json()["imported"] == 2


@pytest.mark.parametrize(("filename", "data", "status", "word"), [
    ("scan.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", 415, "UTF-8"),
    ("archive.zip", b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(200), 415, "binary"),
    ("people.csv", b"", 422, "empty"),
    ("people.csv", b"ref,name\nA,B\n", 422, "column"),
])
def test_a_file_that_is_not_customer_csv_or_jsonl_imports_nothing(client, helpdesk, filename, data, status,
                                                                  word) -> None:
    response = client.post(IMPORT, files={"file": (filename, data, "application/octet-stream")},
                           headers=helpdesk.headers)
    assert_problem(response, status, word)
    assert client.get(CUSTOMERS, headers=helpdesk.headers).json() == []


def test_import_in_another_content_type_is_415(client, helpdesk) -> None:
    response = client.post(IMPORT, content=b"<xml/>", headers={**helpdesk.headers, "Content-Type": "application/xml"})
    assert_problem(response, 415, "multipart/form-data")


def test_import_over_the_size_limit_is_413(repo, monkeypatch, make_user) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from repository import runtime

    monkeypatch.setenv("POSTROOM_MAX_UPLOAD_BYTES", "1024")
    runtime.reset()
    helpdesk = make_user("harry", "helpdesk")
    big = "external_ref,name\n" + "".join(f"R-{i},Person {i}\n" for i in range(200))
    with TestClient(create_app(run_worker_thread=False), raise_server_exceptions=False) as small:
        response = small.post(IMPORT, content=big.encode(), headers={**helpdesk.headers, "Content-Type": "text/csv"})
        assert_problem(response, 413, "limit")
        assert small.get(CUSTOMERS, headers=helpdesk.headers).json() == []


# The import job (api.jobs), which the endpoint and `postroom customers import` both run --------------------------

def _job(account, text: str, **kw):  # noqa: ANN001, ANN003, ANN202
    from api.jobs import import_customer_file

    return import_customer_file(io.BytesIO(text.encode()), actor=account.user, filename="customers.csv", **kw)


def _stored() -> int:
    from repository.db import transaction
    from repository.models import Customer

    with transaction(readonly=True) as s:
        return s.query(Customer).count()


def test_the_import_job_commits_chunk_by_chunk_and_a_rerun_after_a_crash_completes(client, helpdesk) -> None:
    text = "external_ref,name\n" + "".join(f"K-{i:03},Customer {i}\n" for i in range(7))

    class Crash(Exception):
        pass

    def crash_after_first_chunk(report, done) -> None:  # noqa: ANN001
        raise Crash

    with pytest.raises(Crash):
        _job(helpdesk, text, chunk_size=3, on_progress=crash_after_first_chunk)
    assert _stored() == 3  # the first chunk committed, the rest never ran
    progress: list[tuple[int, int]] = []
    report = _job(helpdesk, text, chunk_size=3, on_progress=lambda r, done: progress.append((r.rows, done)))
    assert [rows for rows, _ in progress] == [3, 6, 7]
    assert progress[-1][1] == len(text.encode())  # bytes read, for a progress bar
    assert (report.imported, report.unchanged) == (4, 3)
    assert _stored() == 7


def test_the_import_job_reports_every_rejection_and_audits_the_run_once(client, helpdesk) -> None:
    from repository.db import transaction
    from repository.models import AuditEntry, OutboxEvent

    text = "external_ref,name,email\n" + "".join(
        f"E-{i},Person {i},{'bad@' if i % 2 else f'p{i}@example.com'}\n" for i in range(6))
    rejected: list[dict] = []
    report = _job(helpdesk, text, chunk_size=2, on_rejection=rejected.append)
    assert (report.imported, report.rejected_count) == (3, 3)
    assert [r["line"] for r in rejected] == [3, 5, 7] and rejected == report.rejected
    with transaction(readonly=True) as s:
        runs = s.execute(select(AuditEntry).where(AuditEntry.action == "customers.imported")).scalars().all()
        events = s.execute(select(OutboxEvent).where(OutboxEvent.name == "customers.imported")).scalars().all()
    assert len(runs) == 1 and len(events) == 1
    assert runs[0].actor == "harry"
    assert {k: runs[0].details[k] for k in ("file", "format", "imported", "rejected_count")} == {
        "file": "customers.csv", "format": "csv", "imported": 3, "rejected_count": 3}


def test_the_import_job_checks_the_role_before_reading_anything(client, approver) -> None:
    from api.jobs import import_customer_file
    from repository.errors import PermissionDeniedError

    class Unreadable(io.BytesIO):
        def read(self, *args):  # noqa: ANN002, ANN202
            raise AssertionError("the file was read")

        readline = read

    with pytest.raises(PermissionDeniedError):
        import_customer_file(Unreadable(), actor=approver.user, filename="customers.csv")
    assert _stored() == 0


def test_create_with_the_same_idempotency_key_registers_once(client, helpdesk) -> None:
    headers = {**helpdesk.headers, "Idempotency-Key": "key-1"}
    first = client.post(CUSTOMERS, json=ADA, headers=headers)
    again = client.post(CUSTOMERS, json=ADA, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert again.headers["etag"] == '"1"'
    assert len(client.get(CUSTOMERS, headers=helpdesk.headers).json()) == 1
