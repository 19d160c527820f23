"""`postroom customers import`, run as a real subprocess against the embedded default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from repository.db import transaction
from repository.migrate import upgrade
from repository.models import AuditEntry, Customer

ROOT = Path(__file__).resolve().parents[2]
CSV = ("external_ref,name,address_line1,city,postcode,country,mobile,pref.alerts,segment.tier\n"
       "C-1,Ada Lovelace,10 Downing Street,London,sw1a2aa,GB,07911 123456,sms,gold\n"
       "C-2,Grace Hopper,1 Main St,Arlington,22201,US,,,\n"
       "C-3,Alan Turing,Damrak 1,Amsterdam,1012LG,NL,,,\n")


@pytest.fixture
def env(monkeypatch, tmp_path) -> dict[str, str]:  # noqa: ANN001
    """A migrated embedded-default data dir with an admin and an approver, and the environment for the CLI."""
    from repository.db import get_engine
    from tests.conftest import configure

    configure(monkeypatch, tmp_path)
    upgrade(get_engine())
    environment = dict(os.environ)
    for name, role in (("admin", "admin"), ("april", "approver")):
        made = cli(environment, "users", "create", name, "--role", role, "--password-stdin", stdin="long-password\n")
        assert made.returncode == 0, made.stderr
    return environment


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run `postroom ARGS`."""
    return subprocess.run([sys.executable, "-m", "api.cli", *args], env=env, cwd=ROOT, input=stdin, text=True,
                          capture_output=True, timeout=120)


def _summary(result: subprocess.CompletedProcess) -> dict[str, int]:
    counts = {}
    for line in result.stderr.splitlines():
        parts = line.replace("│", " ").replace("┃", " ").split()
        if len(parts) == 2 and parts[0] in ("imported", "updated", "unchanged", "rejected") and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_import_a_csv_twice_the_second_run_changes_nothing(env, tmp_path) -> None:  # noqa: ANN001
    source = tmp_path / "customers.csv"
    source.write_text(CSV)
    first = cli(env, "customers", "import", str(source), "--as", "admin")
    assert first.returncode == 0, first.stderr
    assert _summary(first) == {"imported": 3, "updated": 0, "unchanged": 0, "rejected": 0}
    second = cli(env, "customers", "import", str(source), "--as", "admin")
    assert second.returncode == 0, second.stderr
    assert _summary(second) == {"imported": 0, "updated": 0, "unchanged": 3, "rejected": 0}
    with transaction(readonly=True) as s:
        ada = s.execute(select(Customer).where(Customer.external_ref == "C-1")).scalar_one()
        assert (ada.postcode, ada.mobile, ada.channel_preferences, ada.segment, ada.version) == (
            "SW1A 2AA", "+447911123456", {"alerts": "sms"}, {"tier": "gold"}, 1)
        runs = s.execute(select(AuditEntry).where(AuditEntry.action == "customers.imported")).scalars().all()
        assert [r.details["unchanged"] for r in runs] == [0, 3]


def test_rejected_rows_are_listed_with_line_numbers_and_exit_1(env, tmp_path) -> None:  # noqa: ANN001
    source = tmp_path / "customers.jsonl"
    rows = [json.dumps({"external_ref": "J-1", "name": "Ada"}), "{not json",
            json.dumps({"external_ref": "J-2", "name": "Grace", "email": "grace@"}),
            json.dumps({"external_ref": "J-3", "name": "Alan"})]
    source.write_text("\n".join(rows) + "\n")
    rejects = tmp_path / "rejects.jsonl"
    result = cli(env, "customers", "import", str(source), "--as", "admin", "--rejects", str(rejects))
    assert result.returncode == 1, result.stderr
    assert _summary(result) == {"imported": 2, "updated": 0, "unchanged": 0, "rejected": 2}
    assert "line 2" in result.stderr and "line 3" in result.stderr and "email" in result.stderr
    written = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["line"], r["external_ref"]) for r in written] == [(2, None), (3, "J-2")]
    with transaction(readonly=True) as s:
        assert sorted(s.execute(select(Customer.external_ref)).scalars()) == ["J-1", "J-3"]


def test_a_binary_file_imports_nothing_and_exits_2(env, tmp_path) -> None:  # noqa: ANN001
    source = tmp_path / "customers.csv"
    source.write_bytes(b"PK\x03\x04" + bytes(100))
    result = cli(env, "customers", "import", str(source), "--as", "admin")
    assert result.returncode == 2
    assert "nothing imported" in result.stderr and "binary" in result.stderr


def test_a_user_without_the_role_imports_nothing(env, tmp_path) -> None:  # noqa: ANN001
    source = tmp_path / "customers.csv"
    source.write_text(CSV)
    result = cli(env, "customers", "import", str(source), "--as", "april")
    assert result.returncode == 2
    assert "helpdesk" in result.stderr
    with transaction(readonly=True) as s:
        assert s.query(Customer).count() == 0
