"""`postroom documents import`, run as a real subprocess against the embedded default."""

from __future__ import annotations

import json
from pathlib import Path

from repository import service
from repository.db import transaction
from repository.models import User
from tests.cli.test_customers_cli import cli, env  # noqa: F401  (the fixture)


def test_a_directory_is_imported_with_a_report_and_refused_files_named(env, tmp_path) -> None:  # noqa: ANN001, F811
    made = cli(env, "users", "create", "alice", "--role", "author", "--password-stdin", stdin="long-password\n")
    assert made.returncode == 0, made.stderr
    source = tmp_path / "letters"
    (source / "2024").mkdir(parents=True)
    for i in range(12):
        (source / "2024" / f"letter-{i}.txt").write_text(f"Dear customer {i},\n")
    (source / "2024" / "letter-3.txt.metadata.json").write_text('{"title": "Letter three", "metadata": {"n": 3}}')
    (source / "2024" / "broken.txt.metadata.json").write_text("{not json")
    (source / "2024" / "broken.txt").write_text("refused for its shadow file")
    report = tmp_path / "report.jsonl"
    result = cli(env, "documents", "import", str(source), "--type", "general", "--as", "alice",
                 "--chunk-size", "5", "--report", str(report))
    assert result.returncode == 1, result.stderr  # some files refused
    assert "broken.txt" in result.stderr and "not valid JSON" in result.stderr
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    imported = {Path(r["path"]).name: r["document_id"] for r in lines if "document_id" in r}
    assert len(imported) == 12 and [Path(r["path"]).name for r in lines if "error" in r] == ["broken.txt"]
    with transaction() as s:
        alice = s.query(User).filter_by(username="alice").one()
        doc = service.get_document(s, actor=alice, document_id=imported["letter-3.txt"])
        assert (doc.title, doc.meta) == ("Letter three", {"n": 3})
        version = service.get_version(s, actor=alice, document_id=imported["letter-7.txt"])
        assert b"".join(service.read_version(s, version=version)) == b"Dear customer 7,\n"


def test_nothing_is_imported_for_an_unknown_type_or_user(env, tmp_path) -> None:  # noqa: ANN001, F811
    (tmp_path / "a.txt").write_text("a")
    unknown_type = cli(env, "documents", "import", str(tmp_path / "a.txt"), "--type", "nope", "--as", "admin")
    assert unknown_type.returncode == 2 and "no document type 'nope'" in unknown_type.stderr
    unknown_user = cli(env, "documents", "import", str(tmp_path / "a.txt"), "--type", "general", "--as", "nobody")
    assert unknown_user.returncode == 2 and "no user 'nobody'" in unknown_user.stderr
    with transaction() as s:
        assert service.list_documents(s, actor=s.query(User).filter_by(username="admin").one()).items == []
