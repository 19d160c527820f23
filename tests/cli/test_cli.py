"""The `postroom` command line, run as a real subprocess against the embedded default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repository.db import transaction
from repository.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(monkeypatch, tmp_path) -> dict[str, str]:  # noqa: ANN001
    """A migrated embedded-default data dir, and the environment that points the CLI at it."""
    from repository.db import get_engine
    from tests.conftest import configure

    configure(monkeypatch, tmp_path)
    upgrade(get_engine())
    return {k: v for k, v in os.environ.items()}


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run `postroom ARGS`."""
    return subprocess.run([sys.executable, "-m", "api.cli", *args], env=env, cwd=ROOT, input=stdin, text=True,
                          capture_output=True, timeout=120)


def test_users_create_reads_the_password_from_stdin_and_never_prints_it(env) -> None:  # noqa: ANN001
    result = cli(env, "users", "create", "carol", "--role", "author", "--role", "approver", "--password-stdin",
                 stdin="a-secret-password\n")
    assert result.returncode == 0, result.stderr
    assert "a-secret-password" not in result.stdout + result.stderr
    listing = cli(env, "users", "list")
    assert "carol\tapprover,author" in listing.stdout
    assert cli(env, "users", "exists", "carol").returncode == 0
    assert cli(env, "users", "exists", "nobody").returncode == 1


def test_users_create_refuses_unknown_roles_and_short_passwords(env) -> None:  # noqa: ANN001
    bad_role = cli(env, "users", "create", "dan", "--role", "wizard", "--password-stdin", stdin="long-enough-pw\n")
    assert bad_role.returncode == 1 and "unknown role" in bad_role.stderr
    short = cli(env, "users", "create", "dan", "--role", "author", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
    assert cli(env, "users", "exists", "dan").returncode == 1


def test_import_directory_reports_imported_and_rejected(env, tmp_path) -> None:  # noqa: ANN001
    cli(env, "users", "create", "admin", "--role", "admin", "--password-stdin", stdin="admin-password\n")
    source = tmp_path / "inbox"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("first")
    (source / "sub" / "b.pdf").write_bytes(b"%PDF-1.4\nfake pdf\n")
    (source / "bomb.docx").write_bytes(_doctype_docx())
    result = cli(env, "import", str(source), "--document-type", "general", "--as", "admin")
    assert result.returncode == 2, result.stderr  # some files were rejected
    assert "imported 2, rejected 1 of 3 files" in " ".join(result.stderr.split())
    assert "bomb.docx" in result.stderr
    from repository import service
    from repository.models import User

    with transaction() as s:
        admin = s.query(User).filter_by(username="admin").one()
        docs = service.list_documents(s, actor=admin).items
        assert sorted(d.meta["source_path"] for d in docs) == ["a.txt", "sub/b.pdf"]


def test_keys_rotate_rewraps_every_data_key_and_content_still_reads(env, tmp_path) -> None:  # noqa: ANN001
    cli(env, "users", "create", "admin", "--role", "admin", "--password-stdin", stdin="admin-password\n")
    source = tmp_path / "inbox"
    source.mkdir()
    for i in range(3):
        (source / f"{i}.txt").write_text(f"content {i}")
    assert cli(env, "import", str(source), "--document-type", "general", "--as", "admin").returncode == 0
    ring = Path(env["POSTROOM_KEYRING_PATH"])
    before = json.loads(ring.read_text())
    result = cli(env, "keys", "rotate")
    assert result.returncode == 0, result.stderr
    assert "rewrapped 3 data keys" in result.stderr
    after = json.loads(ring.read_text())
    assert after["active"] != before["active"] and set(before["keys"]) < set(after["keys"])
    from repository import service
    from repository.models import DataKey, User

    with transaction() as s:
        assert {k.kek_id for k in s.query(DataKey)} == {after["active"]}
        admin = s.query(User).filter_by(username="admin").one()
        texts = sorted(
            b"".join(service.read_version(s, version=service.get_version(s, actor=admin, document_id=d.id)))
            for d in service.list_documents(s, actor=admin).items
        )
    assert texts == [b"content 0", b"content 1", b"content 2"]
    assert cli(env, "audit", "verify").returncode == 0


def _doctype_docx() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><w:document/>')
    return buf.getvalue()


def test_keys_retire_removes_a_rotated_out_key_so_old_backups_cannot_be_read(env, tmp_path) -> None:  # noqa: ANN001
    from repository import service
    from repository.crypto import KeyRing
    from repository.errors import IntegrityError
    from repository.models import AuditEntry, DataKey, User

    cli(env, "users", "create", "admin", "--role", "admin", "--password-stdin", stdin="admin-password\n")
    source = tmp_path / "inbox"
    source.mkdir()
    (source / "a.txt").write_text("kept")
    assert cli(env, "import", str(source), "--document-type", "general", "--as", "admin").returncode == 0
    ring_path = Path(env["POSTROOM_KEYRING_PATH"])
    old = json.loads(ring_path.read_text())["active"]
    with transaction() as s:
        backup = [(k.document_id, k.kek_id, k.wrapped_key) for k in s.query(DataKey)]  # a database backup
    refused = cli(env, "keys", "retire", old)
    assert refused.returncode != 0 and "active key" in refused.stderr
    KeyRing(ring_path).add_key()  # a new active key, but the data keys are still wrapped by the old one
    refused = cli(env, "keys", "retire", old)
    assert refused.returncode != 0 and "still wraps 1 data keys" in " ".join(refused.stderr.split())
    assert old in json.loads(ring_path.read_text())["keys"]
    assert cli(env, "keys", "rotate").returncode == 0
    listed = cli(env, "keys", "list")
    assert listed.returncode == 0
    rows = [[cell.strip() for cell in line.split("│")[1:4]] for line in listed.stderr.splitlines() if old in line]
    assert rows == [[old, "", "0"]]  # no longer active, wraps nothing
    result = cli(env, "keys", "retire", old)
    assert result.returncode == 0, result.stderr
    assert old not in json.loads(ring_path.read_text())["keys"]
    assert cli(env, "keys", "retire", old).returncode != 0  # gone: nothing to retire twice
    ring = KeyRing(ring_path)
    document_id, kek_id, wrapped = backup[0]
    with pytest.raises(IntegrityError, match="not in the key ring"):
        ring.unwrap(kek_id, wrapped, context=f"document:{document_id}")
    with transaction() as s:  # the live repository still reads, and the retirement is on the audit trail
        admin = s.query(User).filter_by(username="admin").one()
        doc = service.list_documents(s, actor=admin).items[0]
        assert b"".join(service.read_version(s, version=service.get_version(s, actor=admin,
                                                                               document_id=doc.id))) == b"kept"
        assert s.query(AuditEntry).filter_by(action="keys.retired", object_id=old).count() == 1
    assert cli(env, "audit", "verify").returncode == 0
