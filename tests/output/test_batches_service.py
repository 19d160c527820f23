"""Letter batches through the service layer on SQLite and PostgreSQL: rows in, one archived PDF/A letter per row
out (composed by a real LibreOffice in chunks), per-row errors, resuming after a runner stops, and never two
letters for one row."""

from __future__ import annotations

import io
import os
import threading

import pikepdf
import pytest
from sqlalchemy import func, select, update

from output.compose import read_metadata
from output.models import Dispatch, Letter, LetterBatch, LetterBatchRow
from output.service import batches
from output.service.batches.intake import BAD
from repository import audit, service
from repository.db import transaction
from repository.errors import InvalidInputError, PermissionDeniedError
from repository.types import utcnow
from tests.output.letters_support import approved_template, customer, uno_pool  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.usefixtures("repo", "uno_pool"), pytest.mark.libreoffice]

@pytest.fixture
def people(make_user):  # noqa: ANN001, ANN201
    """An author, an approver and a help-desk user."""
    return {"author": make_user("alice", "author"), "approver": make_user("bob", "approver"),
            "helpdesk": make_user("harry", "helpdesk")}


@pytest.fixture
def template(people) -> str:  # noqa: ANN001
    """An approved `statement` template (its data: a numeric `balance`)."""
    return approved_template(people["author"], people["approver"])


def _csv(lines: list[str]) -> list[tuple[int, dict]]:
    source = batches.BatchFile(io.BytesIO("\n".join(lines).encode()), filename="rows.csv",
                               schema={"type": "object", "properties": {"balance": {"type": "number"}}})
    return list(source.rows())


def _create(account, rows, **kwargs) -> str:  # noqa: ANN001, ANN003
    with transaction() as s:
        return batches.create_batch(s, actor=account.user, template="statement", rows=rows, **kwargs).id


def _run(batch_id: str, **kwargs) -> batches.Progress:  # noqa: ANN003
    owner = batches.new_owner()
    assert batches.claim_next(None, owner=owner, batch_id=batch_id) == batch_id
    return batches.BatchRunner(batch_id, owner=owner, **kwargs).run()


def _letters(batch_id: str) -> list[Letter]:
    with transaction(readonly=True) as s:
        return list(s.execute(select(Letter).where(Letter.batch_id == batch_id).order_by(Letter.batch_row))
                    .scalars())


def test_a_csv_batch_makes_one_archived_letter_per_row_and_reports_bad_rows(people, template,  # noqa: ANN001
                                                                             monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("POSTROOM_BATCH_CHUNK_LETTERS", "4")
    from repository.config import get_settings
    get_settings.cache_clear()
    author = people["author"]
    for i in range(9):
        customer(author, f"C-{i}", name=f"Customer {i}")
    rows = _csv(["customer_ref,balance"] + [f"C-{i},{i}.50" for i in range(9)]
                + ["C-404,1", "C-1,not-a-number", ",3", "C-2,\"unterminated"])
    batch_id = _create(author, rows, source_name="rows.csv")
    progress = _run(batch_id)
    assert (progress.status, progress.rows_total, progress.rows_done, progress.rows_failed) == ("completed", 13, 9, 4)
    letters = _letters(batch_id)
    assert [lt.batch_row for lt in letters] == list(range(2, 11))  # CSV lines 2..10 (line 1 is the header)
    with transaction(readonly=True) as s:
        errors = {r.row_no: r.error for r in batches.failed_rows(s, batch_id=batch_id)}
        assert "no customer with reference 'C-404'" in errors[11]
        assert "balance" in errors[12]
        assert "names no customer" in errors[13]
        assert errors.keys() == {11, 12, 13, 14}
        for letter in letters:
            version = service.get_version(s, actor=author.user, document_id=letter.document_id)
            pdf = b"".join(service.read_version(s, version=version))
            with pikepdf.open(io.BytesIO(pdf)) as doc:
                text = b"".join(page.Contents.read_bytes() for page in doc.pages)
                assert len(doc.pages) == letter.pages == 1
            assert text  # a page with content
            meta = read_metadata(pdf)
            assert (meta["letterId"], meta["template"], meta["pdfa"]) == (letter.id, "statement", "2B")
            assert f"reference={letter.reference}" in meta["extra"]
            document = service.get_document(s, actor=author.user, document_id=letter.document_id)
            assert document.meta["batch_id"] == batch_id and document.customer_id == letter.customer_id
            assert document.meta["data_sha256"] == letter.data_sha256
            assert s.execute(select(func.count()).select_from(Dispatch).where(
                Dispatch.letter_id == letter.id)).scalar_one() == 1  # one ledger row (print) each
        assert s.get(LetterBatch, batch_id).pages == 9
        assert audit.verify(s).ok


def test_a_stopped_runner_is_resumed_by_another_and_no_row_gets_two_letters(people, template,  # noqa: ANN001
                                                                             monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("POSTROOM_BATCH_CHUNK_LETTERS", "3")
    from repository.config import get_settings
    get_settings.cache_clear()
    author = people["author"]
    ids = [customer(author, f"R-{i}") for i in range(10)]
    batch_id = _create(author, [(n, {"customer_id": cid, "data": {"balance": n}})
                                for n, cid in enumerate(ids, start=1)])
    stop = threading.Event()
    first = _run(batch_id, stop=stop, on_progress=lambda p: stop.set())  # stops after its first chunk
    assert first.status == "queued" and 3 <= first.rows_done < 10
    second = _run(batch_id)
    assert (second.status, second.rows_done, second.rows_failed) == ("completed", 10, 0)
    letters = _letters(batch_id)
    assert sorted(lt.batch_row for lt in letters) == list(range(1, 11))
    with transaction(readonly=True) as s:
        assert s.get(LetterBatch, batch_id).runs == 2
        kept = s.get(LetterBatchRow, (batch_id, 4)).letter_id
    # A row marked pending again (as if a crash had come between archiving its letter and marking it) keeps the
    # letter it has: a third run makes no second one.
    with transaction() as s:
        s.execute(update(LetterBatchRow).where(LetterBatchRow.batch_id == batch_id, LetterBatchRow.row_no == 4)
                  .values(state="pending", letter_id=None))
        s.execute(update(LetterBatch).where(LetterBatch.id == batch_id).values(status="queued"))
    assert _run(batch_id).status == "completed"
    assert len(_letters(batch_id)) == 10
    with transaction(readonly=True) as s:
        row = s.get(LetterBatchRow, (batch_id, 4))
        assert (row.state, row.letter_id) == ("done", kept)
        batch = s.get(LetterBatch, batch_id)
        assert (batch.rows_done, batch.rows_failed) == (10, 0)  # the kept letter is not counted twice


def test_csv_columns_keep_their_case(people, template) -> None:  # noqa: ANN001
    rows = batches.BatchFile(io.BytesIO(b"Customer_Ref,accountNumber,Address.City,balance\nC-1,12,Leeds,3.5\n"),
                             filename="r.csv", schema={"properties": {"accountNumber": {"type": "integer"},
                                                                      "balance": {"type": "number"}}}).rows()
    assert list(rows) == [(2, {"customer_ref": "C-1", "customer_id": None,
                               "data": {"accountNumber": 12, "Address": {"City": "Leeds"}, "balance": 3.5}})]


def test_a_json_array_file_is_read_element_by_element(people, template) -> None:  # noqa: ANN001
    raw = b'\xef\xbb\xbf [{"customer_ref": "C-1", "balance": 1.5},\n {"customer_id": "x", "data": {"balance": 2}},\n 7]'
    for name, media_type in (("rows.json", None), ("upload", "application/json"), (None, None)):
        source = batches.BatchFile(io.BytesIO(raw), filename=name, media_type=media_type)
        assert source.format == "json"
        assert list(source.rows()) == [
            (1, {"customer_ref": "C-1", "customer_id": None, "data": {"balance": 1.5}}),
            (2, {"customer_ref": None, "customer_id": "x", "data": {"balance": 2}}),
            (3, {"customer_ref": None, BAD: "the element must be a JSON object"})]
        assert source.bytes_read == len(raw) - 3  # progress counts what was read (the BOM aside)


@pytest.mark.parametrize(("raw", "words"), [
    (b'[{"customer_ref": "C-1"}, {"customer_ref": ', "near byte"),  # cut off: nothing after the break is trusted
    (b'[{"customer_ref": "C-1"}] [', "well-formed"),
    (b'[{"customer_ref": "C-1"}, {"customer_ref": "C-2",}]', "well-formed"),
    # One element that would take gigabytes once built, and one longer than a JSON Lines row may be.
    (b'[{"customer_ref": "C-1"}, {"data": [' + b"[]," * 200_000 + b'[]]}]', "element 2 of the array is larger"),
    (b'[{"customer_ref": "C-1", "note": "' + b"x" * 1_200_000 + b'"}]', "element 1 of the array is larger"),
])
def test_a_broken_json_array_is_refused_whole(people, template, raw, words) -> None:  # noqa: ANN001
    with pytest.raises(InvalidInputError, match=words):
        batches.BatchFile(io.BytesIO(raw), filename="rows.json")


def test_a_runner_that_keeps_failing_pauses_the_batch_then_fails_it(people, template, monkeypatch) -> None:  # noqa: ANN001
    from output.service.batches import runner

    customer(people["author"], "F-1")
    batch_id = _create(people["author"], [(1, {"customer_ref": "F-1", "data": {"balance": 1}})])
    monkeypatch.setattr(runner, "batch_renderer", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    for attempt in range(1, runner.MAX_FAILED_RUNS + 1):
        progress = _run(batch_id)
        with transaction(readonly=True) as s:
            batch = s.get(LetterBatch, batch_id)
        assert "boom" in batch.last_error and batch.failed_runs == attempt
        if attempt < runner.MAX_FAILED_RUNS:
            assert progress.status == "queued" and batch.lease_until > utcnow()  # paused, not spinning
            assert batches.claim_next(None, owner="other", batch_id=batch_id) is None
            with transaction() as s:
                s.execute(update(LetterBatch).where(LetterBatch.id == batch_id).values(lease_until=utcnow()))
    assert progress.status == "failed"
    with transaction(readonly=True) as s:
        assert s.get(LetterBatch, batch_id).finished_at is not None
        assert s.execute(select(func.count()).select_from(Letter)).scalar_one() == 0


def test_only_letter_writers_may_create_batches_and_empty_input_is_refused(people, template) -> None:  # noqa: ANN001
    with pytest.raises(PermissionDeniedError), transaction() as s:
        batches.create_batch(s, actor=people["helpdesk"].user, template="statement",
                             rows=[(1, {"customer_ref": "X", "data": {}})])
    with pytest.raises(InvalidInputError, match="no rows"), transaction() as s:
        batches.create_batch(s, actor=people["author"].user, template="statement", rows=[])
    with transaction(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(LetterBatch)).scalar_one() == 0


def test_a_killed_runners_work_directory_is_swept_by_the_next_runner(people) -> None:  # noqa: ANN001
    from repository.config import get_settings

    root = get_settings().tmp_dir / "batches"
    root.mkdir(parents=True, exist_ok=True)
    abandoned, live = root / "batch-abandoned", root / "batch-live"
    abandoned.mkdir()
    (abandoned / "chunk.docx").write_bytes(b"left by a killed runner")
    os.utime(abandoned, (0, 0))
    live.mkdir()
    batches.BatchRunner("any", owner="o")
    assert not abandoned.exists() and live.exists()
