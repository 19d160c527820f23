"""The customer registry through the service layer, on SQLite and PostgreSQL: profiles, consents, the
undeliverable flag, and bulk import (the file reader, and the upsert of rows into the caller's session: idempotent
re-runs, row errors with line numbers). The chunk-by-chunk commits of an import are the job's: tests/api."""

from __future__ import annotations

import io
import json
import threading

import pytest
from sqlalchemy import select

from repository import service
from repository.customer_import import CustomerFile, chunks
from repository.db import transaction
from repository.errors import (
    DuplicateError,
    InvalidInputError,
    PermissionDeniedError,
    PreconditionFailedError,
    UnsupportedMediaTypeError,
)
from repository.models import AuditEntry, Customer, CustomerConsent, OutboxEvent
from repository.service.customers import record_import

pytestmark = pytest.mark.usefixtures("repo")

ADDRESS = {"address_lines": ["10 Downing Street"], "city": "London", "postcode": "sw1a2aa", "country": "GB"}


@pytest.fixture
def helpdesk(make_user):  # noqa: ANN001, ANN201
    """A help-desk user: may create and change customers."""
    return make_user("harry", "helpdesk").user


def _create(actor, ref: str = "C-1", name: str = "Ada Lovelace", **fields) -> str:  # noqa: ANN001, ANN003
    with transaction() as s:
        return service.create_customer(s, actor=actor, external_ref=ref, name=name, **fields).id


def _get(customer_id: str) -> Customer:
    with transaction(readonly=True) as s:
        return service.get_customer(s, customer_id=customer_id)


def _audit(customer_id: str) -> list[AuditEntry]:
    with transaction(readonly=True) as s:
        return list(s.execute(select(AuditEntry).where(AuditEntry.object_id == customer_id)
                              .order_by(AuditEntry.seq)).scalars())


def _events(name: str) -> list[dict]:
    with transaction(readonly=True) as s:
        return [e.payload for e in s.execute(select(OutboxEvent).where(OutboxEvent.name == name)
                                             .order_by(OutboxEvent.id)).scalars()]


def _count() -> int:
    with transaction(readonly=True) as s:
        return s.query(Customer).count()


def test_create_stores_normalised_values_and_audits_without_contact_values(helpdesk) -> None:  # noqa: ANN001
    cid = _create(helpdesk, **ADDRESS, email="Ada@Example.COM", mobile="07911 123456", title="Ms",
                  salutation="Dear Ms Lovelace", channel_preferences={"statements": "email"},
                  segment={"tier": "gold"})
    c = _get(cid)
    assert (c.postcode, c.country, c.email, c.mobile) == ("SW1A 2AA", "GB", "Ada@example.com", "+447911123456")
    assert (c.locale, c.version, c.address_undeliverable) == ("en-GB", 1, False)
    [entry] = _audit(cid)
    assert entry.action == "customer.created" and entry.actor == "harry"
    assert "email" in entry.details["fields"] and "mobile" in entry.details["fields"]
    assert "Ada@example.com" not in json.dumps(entry.details) and "7911" not in json.dumps(entry.details)
    assert _events("customer.created") == [{"customer_id": cid}]


def test_role_without_customer_writes_is_refused_and_helpdesk_may(make_user, helpdesk) -> None:  # noqa: ANN001
    approver = make_user("april", "approver").user
    with pytest.raises(PermissionDeniedError):
        _create(approver)
    assert _count() == 0
    cid = _create(helpdesk)
    with transaction() as s, pytest.raises(PermissionDeniedError):
        service.update_customer(s, actor=approver, customer_id=cid, changes={"name": "X"}, expected_version=1)
    with transaction() as s:
        service.update_customer(s, actor=helpdesk, customer_id=cid, changes={"name": "X"}, expected_version=1)
    assert _get(cid).name == "X"


def test_bad_values_are_all_named_and_nothing_is_stored(helpdesk) -> None:  # noqa: ANN001
    with pytest.raises(InvalidInputError) as caught:
        _create(helpdesk, **{**ADDRESS, "postcode": "12345"}, email="nope", mobile="+44 12")
    assert [e["field"] for e in caught.value.extra["errors"]] == ["address.postcode", "email", "mobile"]
    assert _count() == 0


def test_duplicate_external_ref_is_refused(helpdesk) -> None:  # noqa: ANN001
    _create(helpdesk, ref="C-1")
    with pytest.raises(DuplicateError):
        _create(helpdesk, ref=" C-1 ", name="Someone Else")


def test_update_names_changed_fields_bumps_version_and_null_clears(helpdesk) -> None:  # noqa: ANN001
    cid = _create(helpdesk, email="ada@example.com", title="Ms")
    with transaction() as s:
        c = service.update_customer(s, actor=helpdesk, customer_id=cid, expected_version=1,
                                    changes={"email": None, "title": "Dr", "name": "Ada Lovelace"})
        assert (c.email, c.title, c.version) == (None, "Dr", 2)
    entry = _audit(cid)[-1]
    assert entry.action == "customer.updated"
    assert entry.details["fields"] == ["email", "title"]
    assert "ada@example.com" not in json.dumps(entry.details)
    assert _events("customer.updated") == [{"customer_id": cid, "fields": ["email", "title"], "version": 2}]


def test_update_that_changes_nothing_keeps_the_version(helpdesk) -> None:  # noqa: ANN001
    cid = _create(helpdesk, email="ada@example.com")
    with transaction() as s:
        service.update_customer(s, actor=helpdesk, customer_id=cid, expected_version=1,
                                changes={"email": " ada@example.com "})
    assert _get(cid).version == 1
    assert [e.action for e in _audit(cid)] == ["customer.created"]


def test_stale_version_is_refused_and_keeps_the_other_change(helpdesk) -> None:  # noqa: ANN001
    cid = _create(helpdesk)
    with transaction() as s:
        service.update_customer(s, actor=helpdesk, customer_id=cid, changes={"name": "First"}, expected_version=1)
    with transaction() as s, pytest.raises(PreconditionFailedError):
        service.update_customer(s, actor=helpdesk, customer_id=cid, changes={"name": "Second"}, expected_version=1)
    assert (_get(cid).name, _get(cid).version) == ("First", 2)


def test_undeliverable_flag_is_set_once_and_cleared_by_a_new_address(helpdesk) -> None:  # noqa: ANN001
    bare = _create(helpdesk, ref="C-0")
    with transaction() as s, pytest.raises(InvalidInputError) as caught:
        service.mark_undeliverable(s, actor=helpdesk, customer_id=bare, reason="returned")
    assert caught.value.extra["field"] == "address"
    cid = _create(helpdesk, **ADDRESS, email="ada@example.com")
    with transaction() as s:
        c = service.mark_undeliverable(s, actor=helpdesk, customer_id=cid, reason="gone away")
        first_at = c.undeliverable_at
        service.mark_undeliverable(s, actor=helpdesk, customer_id=cid, reason="again")
    c = _get(cid)
    assert (c.address_undeliverable, c.undeliverable_reason, c.undeliverable_at) == (True, "gone away", first_at)
    assert _events("customer.undeliverable") == [{"customer_id": cid, "reason": "gone away"}]
    with transaction() as s:  # other changes leave the flag alone
        service.update_customer(s, actor=helpdesk, customer_id=cid, changes={"email": "new@example.com"},
                                expected_version=None)
    assert _get(cid).address_undeliverable is True
    with transaction() as s:
        service.update_customer(s, actor=helpdesk, customer_id=cid, expected_version=None,
                                changes={**ADDRESS, "address_lines": ["11 Downing Street"]})
    c = _get(cid)
    assert (c.address_undeliverable, c.undeliverable_reason, c.undeliverable_at) == (False, None, None)
    assert _audit(cid)[-1].details["undeliverable_cleared"] is True
    assert _events("customer.undeliverable_cleared") == [{"customer_id": cid}]


def test_consent_history_is_kept_and_the_newest_per_purpose_is_current(helpdesk) -> None:  # noqa: ANN001
    cid = _create(helpdesk)
    with transaction() as s:
        for purpose, granted, source in (("marketing-email", True, "web-form"), ("profiling", False, "web-form"),
                                         ("marketing-email", False, "call-centre")):
            service.record_consent(s, actor=helpdesk, customer_id=cid, purpose=purpose, granted=granted,
                                   source=source)
    with transaction(readonly=True) as s:
        current = service.current_consents(s, customer_id=cid)
        assert [(c.purpose, c.granted, c.source) for c in current] == [
            ("marketing-email", False, "call-centre"), ("profiling", False, "web-form")]
        assert len(service.consent_history(s, customer_id=cid)) == 3
        assert s.query(CustomerConsent).count() == 3
    assert [e.action for e in _audit(cid)].count("customer.consent_recorded") == 3
    with transaction() as s, pytest.raises(InvalidInputError) as caught:
        service.record_consent(s, actor=helpdesk, customer_id=cid, purpose="Bad Purpose!", granted=True, source="")
    assert [e["field"] for e in caught.value.extra["errors"]] == ["purpose", "source"]


@pytest.mark.parametrize("change", ["consent", "undeliverable"])
def test_a_change_without_if_match_waits_for_a_concurrent_change_instead_of_failing(helpdesk, change) -> None:  # noqa: ANN001
    """Recording a consent (or flagging the address) sends no If-Match, so a change another transaction commits
    meanwhile must not make it fail with 412: it waits for that change and builds on it."""
    cid = _create(helpdesk, **ADDRESS)
    outcome: dict = {}

    def record() -> None:
        try:
            with transaction() as s:
                if change == "consent":
                    service.record_consent(s, actor=helpdesk, customer_id=cid, purpose="marketing-email",
                                           granted=True, source="call-centre")
                else:
                    service.mark_undeliverable(s, actor=helpdesk, customer_id=cid, reason="gone away")
                outcome["version"] = service.get_customer(s, customer_id=cid).version
        except Exception as exc:  # reported below
            outcome["error"] = exc

    worker = threading.Thread(target=record)
    with transaction() as s:
        service.update_customer(s, actor=helpdesk, customer_id=cid, changes={"name": "Ada King"},
                                expected_version=1)
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive(), outcome  # it waits for this transaction (a row lock, or SQLite's write lock)
    worker.join(timeout=60)
    assert outcome == {"version": 3}
    customer = _get(cid)
    assert (customer.name, customer.version) == ("Ada King", 3)
    if change == "consent":
        with transaction(readonly=True) as s:
            assert [c.purpose for c in service.current_consents(s, customer_id=cid)] == ["marketing-email"]
    else:
        assert customer.address_undeliverable is True


def test_search_is_case_insensitive_and_pages_with_a_cursor(helpdesk) -> None:  # noqa: ANN001
    for i in range(5):
        _create(helpdesk, ref=f"REF-{i}", name=f"Customer {i}")
    _create(helpdesk, ref="OTHER-100%", name="Grace Hopper")
    with transaction(readonly=True) as s:
        assert [c.external_ref for c in service.search_customers(s, q="hopper")] == ["OTHER-100%"]
        assert [c.external_ref for c in service.search_customers(s, q="100%")] == ["OTHER-100%"]
        assert service.search_customers(s, q="10_") == []
        seen, cursor = [], None
        while True:
            page = service.search_customers_page(s, q="ref-", limit=2, cursor=cursor)
            seen += [c.external_ref for c in page.items]
            if not (cursor := page.next_cursor):
                break
    assert seen == [f"REF-{i}" for i in range(5)]


# Bulk import ---------------------------------------------------------------------------------------------------

CSV = (
    "external_ref,name,address_line1,address_line2,city,postcode,country,email,mobile,pref.statements,segment.tier\n"
    "A-1,Ada Lovelace,10 Downing Street,,London,sw1a2aa,GB,ada@example.com,07911 123456,email,gold\n"
    'A-2,"Hopper, Grace","1 Main St","Suite\n100",Arlington,22201,US,grace@example.com,,,\n'
    "A-3,Bad Postcode,Damrak 1,,Amsterdam,12345,NL,,,,\n"
    "A-4,Too,Few,Columns\n"
    "\n"
    "A-5,Bad Email,,,,,,not-an-email,,,\n"
)


def _import(actor, text: str, *, filename: str = "customers.csv"):  # noqa: ANN001, ANN202
    """The file's rows upserted in one transaction the caller owns, and the run audited, as the import job does."""
    source = CustomerFile(io.BytesIO(text.encode()), filename=filename)
    with transaction() as s:
        report = service.import_customers(s, actor=actor, rows=source.rows())
        record_import(s, actor=actor, report=report, file=filename, fmt=source.format)
    return report


def test_csv_import_reports_rows_and_errors_with_physical_line_numbers(helpdesk) -> None:  # noqa: ANN001
    report = _import(helpdesk, CSV)
    assert (report.imported, report.updated, report.unchanged, report.rejected_count) == (2, 0, 0, 3)
    by_line = {r["line"]: r for r in report.rejected}
    assert sorted(by_line) == [5, 6, 8]  # the quoted field of A-2 spans lines 3-4
    assert by_line[5]["external_ref"] == "A-3"
    assert [e["field"] for e in by_line[5]["errors"]] == ["address.postcode"]
    assert "header has 11" in by_line[6]["errors"][0]["message"]
    assert [e["field"] for e in by_line[8]["errors"]] == ["email"]
    with transaction(readonly=True) as s:
        ada = s.execute(select(Customer).where(Customer.external_ref == "A-1")).scalar_one()
        grace = s.execute(select(Customer).where(Customer.external_ref == "A-2")).scalar_one()
    assert (ada.postcode, ada.mobile, ada.channel_preferences, ada.segment) == (
        "SW1A 2AA", "+447911123456", {"statements": "email"}, {"tier": "gold"})
    assert (grace.name, grace.address_lines, grace.channel_preferences) == (
        "Hopper, Grace", ["1 Main St", "Suite\n100"], {})


def test_importing_the_same_file_again_changes_nothing(helpdesk) -> None:  # noqa: ANN001
    _import(helpdesk, CSV)
    audit_rows = len(_audit_all())
    again = _import(helpdesk, CSV)
    assert (again.imported, again.updated, again.unchanged, again.rejected_count) == (0, 0, 2, 3)
    assert len(_audit_all()) == audit_rows + 1  # only the run's own summary
    with transaction(readonly=True) as s:
        assert {c.version for c in s.execute(select(Customer)).scalars()} == {1}


def test_a_changed_row_counts_as_updated_and_absent_columns_are_kept(helpdesk) -> None:  # noqa: ANN001
    _import(helpdesk, CSV)
    report = _import(helpdesk, "external_ref,email\nA-1,lovelace@example.com\nA-2,grace@example.com\n")
    assert (report.imported, report.updated, report.unchanged) == (0, 1, 1)
    with transaction(readonly=True) as s:
        ada = s.execute(select(Customer).where(Customer.external_ref == "A-1")).scalar_one()
    assert (ada.email, ada.postcode, ada.version) == ("lovelace@example.com", "SW1A 2AA", 2)
    assert _audit(ada.id)[-1].details == {"fields": ["email"], "source": "import"}


def test_jsonl_import_with_bad_lines(helpdesk) -> None:  # noqa: ANN001
    lines = [
        json.dumps({"external_ref": "J-1", "name": "Ada", "address": {"lines": ["Damrak 1"], "city": "Amsterdam",
                                                                        "postcode": "1012lg", "country": "NL"},
                    "paperless": True, "segment": {"score": 7}}),
        "{not json",
        "",
        json.dumps(["a", "list"]),
        json.dumps({"external_ref": "J-2", "name": "Grace", "emial": "typo@example.com"}),
        json.dumps({"external_ref": "J-3", "name": "Alan", "locale": "de_DE", "id": "ignored", "version": 9}),
    ]
    report = _import(helpdesk, "\n".join(lines) + "\n", filename="people.jsonl")
    assert (report.imported, report.rejected_count) == (2, 3)
    assert [r["line"] for r in report.rejected] == [2, 4, 5]
    assert "not valid JSON" in report.rejected[0]["errors"][0]["message"]
    assert report.rejected[2]["errors"] == [{"field": "emial", "message": "is not a customer field"}]
    with transaction(readonly=True) as s:
        j1 = s.execute(select(Customer).where(Customer.external_ref == "J-1")).scalar_one()
        j3 = s.execute(select(Customer).where(Customer.external_ref == "J-3")).scalar_one()
    assert (j1.postcode, j1.paperless, j1.segment, j3.locale) == ("1012 LG", True, {"score": 7}, "de-DE")


def test_the_reader_hands_out_rows_in_chunks_of_at_most_the_size_asked() -> None:
    text = "external_ref,name\n" + "".join(f"K-{i:03},Customer {i}\n" for i in range(7))
    sizes = [len(c) for c in chunks(CustomerFile(io.BytesIO(text.encode()), filename="k.csv"), 3)]
    assert sizes == [3, 3, 1]
    assert [len(c) for c in chunks(CustomerFile(io.BytesIO(text.encode()), filename="k.csv"), 0)] == [1] * 7
    lines = [line for chunk in chunks(CustomerFile(io.BytesIO(text.encode()), filename="k.csv"), 5000)
             for line, _ in chunk]
    assert lines == list(range(2, 9))
    assert _count() == 0  # reading imports nothing


def test_import_rows_go_into_the_callers_transaction(helpdesk) -> None:  # noqa: ANN001
    """The service never commits: rows imported in a transaction that is rolled back leave nothing behind."""
    source = CustomerFile(io.BytesIO(b"external_ref,name\nR-1,Ada\nR-2,Grace\n"), filename="r.csv")

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction() as s:
        report = service.import_customers(s, actor=helpdesk, rows=source.rows())
        assert report.imported == 2 and s.query(Customer).count() == 2
        raise Abort
    assert _count() == 0
    assert _events("customer.created") == []


def test_import_row_the_database_refuses_is_rejected_alone(helpdesk, database) -> None:  # noqa: ANN001
    rows = [{"external_ref": "N-1", "name": "Ada"}, {"external_ref": "N-2", "name": "Nul\x00Name"},
            {"external_ref": "N-3", "name": "Grace"}]  # the NUL is escaped in JSON: the file itself is text
    report = _import(helpdesk, "".join(json.dumps(r) + "\n" for r in rows), filename="nul.jsonl")
    if database:  # PostgreSQL cannot store NUL characters: that row is rejected, the others are not
        assert (report.imported, report.rejected_count) == (2, 1)
        assert report.rejected[0]["line"] == 2
        assert _count() == 2
    else:
        assert (report.imported, report.rejected_count) == (3, 0)


def test_import_needs_a_writing_role_and_nothing_is_read_without_one(make_user) -> None:  # noqa: ANN001
    author = make_user("alice", "author").user
    with pytest.raises(PermissionDeniedError):
        _import(author, CSV)
    assert _count() == 0


@pytest.mark.parametrize(("data", "error"), [
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", UnsupportedMediaTypeError),
    (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", UnsupportedMediaTypeError),
    (b"\xff\xfee\x00x\x00", UnsupportedMediaTypeError),
    (b"", InvalidInputError),
    (b"external_ref,name,favourite_colour\nA-1,Ada,blue\n", InvalidInputError),
    (b"name\nAda\n", InvalidInputError),
])
def test_a_file_that_is_not_customer_csv_or_jsonl_imports_nothing(helpdesk, data, error) -> None:  # noqa: ANN001
    with pytest.raises(error):
        CustomerFile(io.BytesIO(data), filename="upload")
    assert _count() == 0


def _audit_all() -> list[AuditEntry]:
    with transaction(readonly=True) as s:
        return list(s.execute(select(AuditEntry)).scalars())
