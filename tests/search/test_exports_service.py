"""Production exports on SQLite and PostgreSQL: the ZIP read back (DAT and OPT parsed with their delimiters, every
file re-hashed against the manifest, natives against the repository's SHA-256), contiguous Bates numbers across
exports, only readable documents, a restart resuming a queued or abandoned export with the same Bates range, a
document destroyed meanwhile failing the export, downloads, and bad requests refused without writes."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import threading
import zipfile

import pikepdf
import pytest
from sqlalchemy import func, select, update

from repository import service, vault
from repository.access import AccessDeniedError
from repository.db import get_engine, transaction
from repository.errors import InvalidInputError, PermissionDeniedError
from repository.models import Document, DocumentVersion
from repository.runtime import get_runtime
from repository.service.destruction import destroy_document
from repository.service.document_types import create_type
from search.matters import exports, jobs
from search.matters import service as matters
from search.matters.custody import verify_custody
from search.matters.errors import ExportNotReadyError, MatterStateError
from search.matters.models import Matter, MatterEvent, MatterExport, MatterExportItem
from search.matters.package import export_path, read_package
from tests.records.support import user
from tests.repository.helpers import staged
from tests.search.matters_support import member, parse_dat, parse_opt, pdf
from tests.search.support import add, settle, start

pytestmark = pytest.mark.usefixtures("repo")
@pytest.fixture
def people():  # noqa: ANN201
    start()
    return {"author": user("alice", "author"), "manager": user("rita", "records_manager"),
            "auditor": user("audrey", "auditor"), "helpdesk": user("hal", "helpdesk"), "admin": user("root", "admin")}


def _matter(manager, prefix: str = "SMITH") -> str:  # noqa: ANN001
    with transaction() as session:
        return matters.create_matter(session, actor=manager, name="Smith v. Bank", bates_prefix=prefix).id


def _search(manager, matter_id: str, q: str = "fraud", name: str = "fraud") -> str:  # noqa: ANN001
    with transaction() as session:
        return matters.add_search(session, actor=manager, matter_id=matter_id, name=name, q=q).id


def _request(manager, matter_id: str, **what) -> MatterExport:  # noqa: ANN001, ANN003
    with transaction() as session:
        return exports.request_export(session, actor=manager, matter_id=matter_id, **what)


def _export(export_id: str) -> MatterExport:
    with transaction(readonly=True) as session:
        return session.get(MatterExport, export_id)


def _events(matter_id: str) -> list[MatterEvent]:
    with transaction(readonly=True) as session:
        return list(session.execute(select(MatterEvent).where(MatterEvent.matter_id == matter_id)
                                    .order_by(MatterEvent.seq)).scalars())


def _build_all() -> None:
    while jobs.export_pending(get_engine()):
        pass


def _current_sha256(document_id: str) -> str:
    with transaction(readonly=True) as session:
        doc = session.get(Document, document_id)
        return session.execute(select(DocumentVersion.sha256).where(
            DocumentVersion.document_id == document_id, DocumentVersion.major == doc.current_major,
            DocumentVersion.minor == doc.current_minor)).scalar_one()


def _read_package(export: MatterExport) -> tuple[zipfile.ZipFile, dict]:
    """The ZIP, checked whole against the export row and its own manifest; on disk it is encrypted."""
    stored = export_path(export.id).read_bytes()
    assert not stored.startswith(b"PK") and b"fraud" not in stored and b"manifest.json" not in stored
    data = b"".join(read_package(export_path(export.id), vault.unwrap_key(
        get_runtime(), context=exports.EXPORT_KEYS, row_id=export.id, kek_id=export.kek_id,
        wrapped=export.wrapped_key), export.zip_size))
    assert hashlib.sha256(data).hexdigest() == export.zip_sha256 and len(data) == export.zip_size
    zf = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(zf.read("manifest.json"))
    assert set(manifest["files"]) == set(zf.namelist()) - {"manifest.json"}
    for name, entry in manifest["files"].items():
        content = zf.read(name)
        assert hashlib.sha256(content).hexdigest() == entry["sha256"] and len(content) == entry["size"], name
    lines = "".join(f"{manifest['files'][n]['sha256']}  {n}\n" for n in sorted(manifest["files"]))
    assert hashlib.sha256(lines.encode()).hexdigest() == manifest["package_hash"]["sha256"] == export.package_sha256
    return zf, manifest


@pytest.fixture
def corpus(people):  # noqa: ANN001, ANN201
    author = people["author"]
    with transaction() as session:
        letter = service.create_document(session, actor=author, title="Letter to Mr Smith", document_type="letter",
                                         content=staged(pdf("Dear Mr Smith", "about the fraud", "Yours"),
                                                        "letter.pdf")).id
    memo = add(author, "Internal memo: fraud suspected.\nEscalate.", title="Memo \u00ae \u00fe draft")
    with transaction() as session:
        service.checkout(session, actor=author, document_id=memo)
    with transaction() as session:
        service.checkin(session, document_id=memo, actor=author, content=staged(b"Memo v2: fraud confirmed."))
    note = add(author, "Call notes: customer mentioned fraud twice.", title="Call notes", filename="call.txt")
    add(author, "Unrelated minutes.", title="Minutes")
    settle()
    return {"letter": letter, "memo": memo, "note": note}


def test_an_export_reads_back_through_its_load_files_and_manifest(people, corpus) -> None:  # noqa: ANN001
    manager = people["manager"]
    matter_id = _matter(manager)
    requested = _request(manager, matter_id, search_id=_search(manager, matter_id))
    assert requested.state == "queued" and requested.document_count == 3 and requested.volume == "VOL0001"
    _build_all()
    export = _export(requested.id)
    assert export.state == "completed", export.error
    zf, manifest = _read_package(export)

    records = parse_dat(zf.read("DATA/export.dat"))
    assert [r["BEGBATES"] for r in records] == ["SMITH000001", "SMITH000004", "SMITH000005"]  # oldest first
    assert [r["ENDBATES"] for r in records] == ["SMITH000003", "SMITH000004", "SMITH000005"]  # 3 PDF pages
    by_title = {r["TITLE"]: r for r in records}
    assert set(by_title) == {"Letter to Mr Smith", "Memo \ufffd \ufffd draft", "Call notes"}
    for record, document_id in ((by_title["Letter to Mr Smith"], corpus["letter"]),
                                (by_title["Memo \ufffd \ufffd draft"], corpus["memo"]),
                                (by_title["Call notes"], corpus["note"])):
        native = zf.read(member(record["NATIVEPATH"]))
        assert hashlib.sha256(native).hexdigest() == record["SHA256"] == _current_sha256(document_id)
        assert hashlib.md5(native).hexdigest() == record["MD5HASH"]  # noqa: S324
        assert record["CUSTODIAN"] == "alice" and len(record["DATE"]) == 10
        assert member(record["TEXTPATH"]) == f"TEXT/{record['BEGBATES']}.txt"
    letter = by_title["Letter to Mr Smith"]
    assert letter["DOCTYPE"] == "letter" and letter["NATIVEPATH"] == "NATIVES\\SMITH000001.pdf"
    assert "fraud" in zf.read("TEXT/SMITH000001.txt").decode()
    assert zf.read(member(by_title["Memo \ufffd \ufffd draft"]["NATIVEPATH"])) == b"Memo v2: fraud confirmed."
    assert by_title["Call notes"]["NATIVEPATH"] == "NATIVES\\SMITH000005.txt"

    opt = parse_opt(zf.read("DATA/export.opt"))
    assert opt == [["SMITH000001", "VOL0001", "IMAGES\\SMITH000001.pdf", "Y", "", "", "3"],
                   ["SMITH000002", "VOL0001", "IMAGES\\SMITH000001.pdf", "", "", "", ""],
                   ["SMITH000003", "VOL0001", "IMAGES\\SMITH000001.pdf", "", "", "", ""]]
    with pikepdf.open(io.BytesIO(zf.read("IMAGES/SMITH000001.pdf"))) as image:
        assert len(image.pages) == 3
    assert manifest["bates"] == {"begin": "SMITH000001", "end": "SMITH000005"}
    assert [d["document_id"] for d in manifest["documents"]] == [corpus["letter"], corpus["memo"], corpus["note"]]

    events = _events(matter_id)
    asked, done = events[-2], events[-1]
    assert asked.action == "export.requested" and asked.actor == "rita" and asked.details["document_count"] == 3
    assert {d["document_id"]: d["version"] for d in asked.details["documents"]}[corpus["memo"]] == "1.1"
    assert done.action == "export.completed" and done.details["requested_by"] == "rita"
    assert done.details["package_sha256"] == manifest["package_hash"]["sha256"]
    assert done.details["zip_sha256"] == export.zip_sha256 and done.details["document_count"] == 3
    with transaction(readonly=True) as session:
        assert verify_custody(session, session.get(Matter, matter_id)).ok

    # The next export of the matter continues the numbering in a new volume.
    second = _request(manager, matter_id, document_ids=[corpus["note"]])
    _build_all()
    zf2, _ = _read_package(_export(second.id))
    assert [(r["BEGBATES"], r["ENDBATES"]) for r in parse_dat(zf2.read("DATA/export.dat"))] == \
        [("SMITH000006", "SMITH000006")]
    assert _export(second.id).volume == "VOL0002" and zf2.read("DATA/export.opt") == b""


def test_only_documents_the_requester_may_read_are_produced(people, corpus) -> None:  # noqa: ANN001
    author, manager, admin = people["author"], people["manager"], people["admin"]
    with transaction() as session:
        create_type(session, actor=admin, name="hr", allowed_media_types=[], read_roles=["author"],
                    write_roles=["author"])
    private = add(author, "HR file mentions fraud.", title="HR", document_type="hr")
    settle()
    matter_id = _matter(manager)
    search_id = _search(manager, matter_id)
    by_search = _request(manager, matter_id, search_id=search_id)
    assert by_search.document_count == 3 and by_search.excluded_unreadable == 1
    with transaction(readonly=True) as session:
        produced = set(session.execute(select(MatterExportItem.document_id)
                                       .where(MatterExportItem.export_id == by_search.id)).scalars())
    assert private not in produced and produced == set(corpus.values())
    with pytest.raises(InvalidInputError, match="may not read") as err, transaction() as session:
        exports.request_export(session, actor=manager, matter_id=matter_id, document_ids=[corpus["note"], private])
    assert err.value.extra["not_found"] == [private]

    # Restricted documents: records managers only (an admin is not one).
    with transaction() as session:
        session.execute(update(Document).where(Document.id == corpus["note"]).values(restricted=True))
    assert _request(manager, matter_id, document_ids=[corpus["note"]]).document_count == 1
    with pytest.raises(InvalidInputError, match="may not read"), transaction() as session:
        exports.request_export(session, actor=admin, matter_id=matter_id, document_ids=[corpus["note"]])


def test_an_export_by_search_with_text_produces_matching_documents_in_the_trash(people, corpus) -> None:  # noqa: ANN001
    author, manager = people["author"], people["manager"]
    with transaction() as session:
        service.trash_document(session, actor=author, document_id=corpus["note"])
    settle()  # the index no longer holds the note
    matter_id = _matter(manager)
    requested = _request(manager, matter_id, search_id=_search(manager, matter_id))
    assert requested.document_count == 3
    with transaction(readonly=True) as session:
        produced = set(session.execute(select(MatterExportItem.document_id)
                                       .where(MatterExportItem.export_id == requested.id)).scalars())
    assert produced == set(corpus.values())
    event = _events(matter_id)[-1]
    assert event.action == "export.requested"
    assert [d["document_id"] for d in event.details["documents"] if d["in_trash"]] == [corpus["note"]]
    _build_all()
    export = _export(requested.id)
    assert export.state == "completed"
    zf, _ = _read_package(export)
    natives = [n for n in zf.namelist() if n.startswith("NATIVES/")]
    assert any(zf.read(n) == b"Call notes: customer mentioned fraud twice." for n in natives)


def test_a_restart_resumes_queued_and_abandoned_exports_with_the_same_bates_range(people, corpus) -> None:  # noqa: ANN001
    manager, engine = people["manager"], get_engine()
    matter_id = _matter(manager)
    first = _request(manager, matter_id, document_ids=[corpus["letter"], corpus["note"]])
    # A runner claims it, reserves the Bates range, starts writing, and dies (its lease runs out).
    assert jobs._claim(engine, "dead-runner") == first.id
    production, reserve = jobs._prepare(engine, first.id)
    assert reserve
    jobs._reserve(engine, first.id, "dead-runner", production)
    export_path(first.id).parent.mkdir(parents=True, exist_ok=True)
    (export_path(first.id).parent / f".{first.id}.dead.part").write_bytes(b"half a zip")
    with transaction() as session:
        session.execute(update(MatterExport).values(lease_until=MatterExport.requested_at))
    # Another export queued meanwhile; a stop request puts an export back in the queue without using an attempt.
    second = _request(manager, matter_id, document_ids=[corpus["memo"]])
    stopped = threading.Event()
    stopped.set()
    assert jobs.export_pending(engine, owner="stopping", stop=stopped) == 1
    assert _export(first.id).state == "queued" and _export(first.id).attempts == 1

    _build_all()
    done, later = _export(first.id), _export(second.id)
    assert (done.state, later.state) == ("completed", "completed")
    assert (done.bates_begin, done.bates_end, later.bates_begin, later.bates_end) == (1, 4, 5, 5)
    with transaction(readonly=True) as session:
        assert session.get(Matter, matter_id).next_bates == 6
    assert [p.name for p in export_path(first.id).parent.iterdir() if p.name.endswith(".part")] == []
    zf, _ = _read_package(done)
    assert [r["BEGBATES"] for r in parse_dat(zf.read("DATA/export.dat"))] == ["SMITH000001", "SMITH000004"]
    completed = [e for e in _events(matter_id) if e.action == "export.completed"]
    assert [e.details["export_id"] for e in completed] == [first.id, second.id]


def test_a_document_destroyed_before_the_build_fails_the_export(people, corpus) -> None:  # noqa: ANN001
    manager = people["manager"]
    matter_id = _matter(manager)
    requested = _request(manager, matter_id, document_ids=[corpus["note"], corpus["memo"]])
    with transaction() as session:
        destroy_document(session, document_id=corpus["memo"], actor="rita", reason="retention ended")
    _build_all()
    failed = _export(requested.id)
    assert failed.state == "failed" and corpus["memo"] in failed.error and "destroyed" in failed.error
    assert not export_path(requested.id).exists()
    last = _events(matter_id)[-1]
    assert last.action == "export.failed" and last.actor == "system:search" and corpus["memo"] in last.details["error"]
    with pytest.raises(ExportNotReadyError, match="failed"), transaction() as session:
        exports.open_download(session, actor=manager, matter_id=matter_id, export_id=requested.id)


def test_downloads_are_for_managers_once_completed_and_are_recorded(people, corpus) -> None:  # noqa: ANN001
    manager, auditor, helpdesk = people["manager"], people["auditor"], people["helpdesk"]
    matter_id = _matter(manager)
    requested = _request(manager, matter_id, document_ids=[corpus["note"]])
    with pytest.raises(ExportNotReadyError, match="queued"), transaction() as session:
        exports.open_download(session, actor=manager, matter_id=matter_id, export_id=requested.id)
    _build_all()
    with transaction() as session:
        export, stream = exports.open_download(session, actor=manager, matter_id=matter_id, export_id=requested.id)
    assert hashlib.sha256(b"".join(stream)).hexdigest() == export.zip_sha256
    assert _events(matter_id)[-1].action == "export.downloaded"
    with transaction(readonly=True) as session:  # auditors see the status
        assert exports.get_export(session, actor=auditor, matter_id=matter_id, export_id=requested.id).state == \
            "completed"
    with pytest.raises(PermissionDeniedError), transaction() as session:  # but not the documents
        exports.open_download(session, actor=auditor, matter_id=matter_id, export_id=requested.id)
    for attempt in (exports.open_download, exports.get_export):
        with pytest.raises(AccessDeniedError), transaction() as session:
            attempt(session, actor=helpdesk, matter_id=matter_id, export_id=requested.id)


def test_bad_export_requests_are_refused_and_nothing_is_written(people, corpus) -> None:  # noqa: ANN001
    manager = people["manager"]
    matter_id = _matter(manager)
    search_id = _search(manager, matter_id)
    empty_id = _search(manager, matter_id, q="nonexistentword", name="empty")
    cases = [({}, "body"), ({"search_id": search_id, "document_ids": [corpus["note"]]}, "body"),
             ({"document_ids": []}, "document_ids"), ({"document_ids": ["nope"]}, "document_ids"),
             ({"document_ids": [5]}, "document_ids"), ({"search_id": empty_id}, "search_id")]
    for what, field in cases:
        with pytest.raises(InvalidInputError) as err, transaction() as session:
            exports.request_export(session, actor=manager, matter_id=matter_id, **what)
        assert err.value.extra["field"] == field
    with transaction() as session:
        matters.update_matter(session, actor=manager, matter_id=matter_id, status="closed")
    with pytest.raises(MatterStateError), transaction() as session:
        exports.request_export(session, actor=manager, matter_id=matter_id, search_id=search_id)
    with transaction(readonly=True) as session:
        assert session.execute(select(func.count()).select_from(MatterExport)).scalar_one() == 0
        assert session.get(Matter, matter_id).next_volume == 1


def test_a_package_key_rotates_with_the_ring_and_outlives_the_retired_key(people, corpus) -> None:  # noqa: ANN001
    manager = people["manager"]
    matter_id = _matter(manager)
    requested = _request(manager, matter_id, document_ids=[corpus["note"]])
    _build_all()
    runtime = get_runtime()
    old = _export(requested.id).kek_id
    assert old == runtime.keyring.active_id
    with transaction() as session:
        _, rewrapped = vault.rotate_keys(session, runtime=runtime, actor="test")
    export = _export(requested.id)
    assert export.kek_id == runtime.keyring.active_id != old and rewrapped >= 2  # documents and the package
    with transaction() as session:
        vault.retire_key(session, runtime=runtime, kek_id=old, actor="test")
    _read_package(export)  # still reads: its key is wrapped by the new key-encryption key
    with transaction() as session:
        _, stream = exports.open_download(session, actor=manager, matter_id=matter_id, export_id=requested.id)
    assert hashlib.sha256(b"".join(stream)).hexdigest() == export.zip_sha256


def test_a_package_expires_after_its_retention_and_the_download_is_gone(people, corpus) -> None:  # noqa: ANN001
    from search.matters.errors import ExportExpiredError

    manager = people["manager"]
    matter_id = _matter(manager)
    requested = _request(manager, matter_id, document_ids=[corpus["note"]])
    _build_all()
    export = _export(requested.id)
    expires = exports.expires_at(export)
    assert expires == export.completed_at + dt.timedelta(days=30)  # the default retention
    engine = get_engine()
    assert jobs.expire_exports(engine, now=expires - dt.timedelta(minutes=1)) == 0
    assert export_path(export.id).is_file()
    assert jobs.expire_exports(engine, now=expires + dt.timedelta(minutes=1)) == 1
    assert not export_path(export.id).exists()
    expired = _export(requested.id)
    assert (expired.state, expired.wrapped_key, expired.zip_sha256) == ("expired", None, export.zip_sha256)
    with pytest.raises(ExportExpiredError, match="request a new export"), transaction() as session:
        exports.open_download(session, actor=manager, matter_id=matter_id, export_id=requested.id)
    last = _events(matter_id)[-1]
    assert last.action == "export.expired" and last.details["zip_sha256"] == export.zip_sha256
    assert jobs.expire_exports(engine, now=expires + dt.timedelta(days=1)) == 0  # once
    with transaction(readonly=True) as session:
        assert verify_custody(session, session.get(Matter, matter_id)).ok
