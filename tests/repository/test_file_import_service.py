"""Importing files from disk (`import_files`): a chunk per transaction, shadow metadata files, refused files
reported while the rest is imported; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from repository import audit, service
from repository.db import transaction
from repository.errors import PermissionDeniedError, UnknownDocumentTypeError
from repository.models import Document
from repository.runtime import get_runtime
from repository.service.file_import import import_files, source_files

pytestmark = pytest.mark.usefixtures("repo")


def _tree(root: Path, n: int) -> list[Path]:
    (root / "sub").mkdir(parents=True)
    paths = []
    for i in range(n):
        path = root / ("sub" if i % 2 else "") / f"note-{i:02}.txt"
        path.write_bytes(f"note {i}\n".encode() * (i + 1))
        paths.append(path)
    return paths


def test_every_file_becomes_a_document_with_its_content_chunk_by_chunk(make_user, tmp_path) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    paths = _tree(tmp_path / "in", 23)
    (tmp_path / "in" / ".hidden").write_text("editor swap file")
    chunks = []
    report = import_files(source_files([tmp_path / "in"]), actor=alice.user, document_type="general", chunk_size=10,
                          on_chunk=lambda r: chunks.append(len(r.imported)))
    assert chunks == [10, 20, 23] and report.rejected == {}
    assert set(report.imported) == {str(p) for p in paths}
    with transaction() as s:
        for path in paths:
            doc = service.get_document(s, actor=alice.user, document_id=report.imported[str(path)])
            assert (doc.title, doc.version_label) == (path.name, "1.0")
            version = service.get_version(s, actor=alice.user, document_id=doc.id)
            assert b"".join(service.read_version(s, version=version)) == path.read_bytes()
            assert version.filename == path.name
        assert audit.verify(s).ok


def test_a_shadow_file_gives_title_metadata_and_customer(make_user, tmp_path) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    with transaction() as s:
        customer = service.create_customer(s, actor=alice.user, external_ref="C-77", name="Ada")
        s.flush()
        customer_id = customer.id
    (tmp_path / "in").mkdir()
    source = tmp_path / "in" / "statement.txt"
    source.write_text("balance 12.00")
    (tmp_path / "in" / "statement.txt.metadata.json").write_text(json.dumps(
        {"title": "March statement", "metadata": {"account": "12-34"}, "customer_ref": "C-77", "comment": "scan"}))
    assert list(source_files([tmp_path / "in"])) == [source]
    report = import_files([source], actor=alice.user, document_type="general")
    with transaction() as s:
        doc = service.get_document(s, actor=alice.user, document_id=report.imported[str(source)])
        assert (doc.title, doc.meta, doc.customer_id) == ("March statement", {"account": "12-34"}, customer_id)
        assert service.get_version(s, actor=alice.user, document_id=doc.id).comment == "scan"


def test_refused_files_are_reported_and_the_others_imported(make_user, tmp_path) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    with transaction() as s:
        service.create_type(s, actor=make_user("root", "admin").user, name="notes",
                            allowed_media_types=["text/plain"], read_roles=["author"], write_roles=["author"])
    paths = _tree(tmp_path / "in", 8)
    (tmp_path / "in" / "scan.pdf").write_bytes(b"%PDF-1.7 not text")
    os.mkfifo(tmp_path / "in" / "pipe.txt")
    shadows = {3: '{"metadata": ["not", "an", "object"]}', 4: '{"customer_ref": "nobody"}', 5: '{"colour": "red"}',
               6: '{"title": 42}', 7: '{"metadata": ' + "[" * 30_000 + "]" * 30_000 + "}"}
    for i, text in shadows.items():
        paths[i].with_name(paths[i].name + ".metadata.json").write_text(text)
    report = import_files(source_files([tmp_path / "in"]), actor=alice.user, document_type="notes", chunk_size=4)
    refused = {Path(p).name: reason for p, reason in report.rejected.items()}
    assert set(refused) == {"scan.pdf", "pipe.txt", "note-03.txt", "note-04.txt", "note-05.txt", "note-06.txt",
                            "note-07.txt"}
    assert "application/pdf" in refused["scan.pdf"]
    assert "metadata must be a JSON object" in refused["note-03.txt"]
    assert "nobody" in refused["note-04.txt"] and "colour" in refused["note-05.txt"]
    assert "title must be a string" in refused["note-06.txt"]
    assert "not valid JSON" in refused["note-07.txt"] and "not a regular file" in refused["pipe.txt"]
    assert {Path(p).name for p in report.imported} == {p.name for p in paths} - set(refused)
    with transaction() as s:
        assert s.execute(select(func.count()).select_from(Document)).scalar_one() == 3
    blobs = [b for b in get_runtime().store.list() if not b.key.split("/")[1].startswith(".tmp-")]
    assert len(blobs) == 3  # nothing left behind of the refused files


def test_an_unknown_or_forbidden_type_refuses_the_import_before_any_file(make_user, tmp_path) -> None:  # noqa: ANN001
    paths = _tree(tmp_path / "in", 3)
    with pytest.raises(UnknownDocumentTypeError):
        import_files(paths, actor=make_user("alice", "author").user, document_type="no-such-type")
    with pytest.raises(PermissionDeniedError):  # helpdesk may read letters, not write them
        import_files(paths, actor=make_user("hd", "helpdesk").user, document_type="letter")
    with transaction() as s:
        assert s.execute(select(func.count()).select_from(Document)).scalar_one() == 0
