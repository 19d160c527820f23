"""`postroom records sweep` and `postroom records execute`, run as real subprocesses against the embedded
default."""

from __future__ import annotations

import re

from sqlalchemy import select

from records.models import DispositionBatch, RecordInfo
from records.service.disposition import approve
from repository.db import transaction
from tests.cli.test_cli import cli, env  # noqa: F401 - the fixture
from tests.records.support import make_class, make_document, start, user


def _documents(count: int, period_days: int) -> tuple[object, list[str]]:
    start()
    manager, author = user("rita", "records_manager"), user("alice", "author")
    make_class(manager, "GEN-NOW", ["general"], period_value=period_days, period_unit="days")
    return manager, [make_document(author, data=f"doc {i}".encode()) for i in range(count)]


def test_a_dry_run_prints_counts_by_class_and_action_and_proposes_nothing(env) -> None:  # noqa: ANN001, F811
    _documents(2, 30)
    result = cli(env, "records", "sweep", "--dry-run", "--as-of", "2100-01-01")
    assert result.returncode == 0, result.stderr
    assert re.search(r"GEN-NOW\s*│\s*destroy\s*│\s*2", result.stderr), result.stderr
    assert result.stdout == ""
    with transaction(readonly=True) as s:
        assert s.execute(select(DispositionBatch)).first() is None
        assert set(s.execute(select(RecordInfo.disposition)).scalars()) == {"active"}
    nothing = cli(env, "records", "sweep", "--dry-run")  # due in 30 days: nothing yet
    assert nothing.returncode == 3 and "nothing is due" in nothing.stderr


def test_sweep_proposes_a_batch_and_execute_carries_it_out_once_approved(env) -> None:  # noqa: ANN001, F811
    manager, docs = _documents(2, 0)
    proposed = cli(env, "records", "sweep")
    assert proposed.returncode == 0, proposed.stderr
    batch_id = proposed.stdout.strip()
    assert "proposed disposition batch" in proposed.stderr
    assert cli(env, "records", "execute", batch_id).returncode == 2  # not approved yet
    with transaction() as s:
        approve(s, actor=manager, batch_id=batch_id)
    executed = cli(env, "records", "execute")
    assert executed.returncode == 0, executed.stderr
    assert executed.stdout.strip() == batch_id and "2 destroyed" in executed.stderr
    with transaction(readonly=True) as s:
        assert s.get(DispositionBatch, batch_id).certificate_id
        assert {s.get(RecordInfo, d).disposition for d in docs} == {"destroyed"}
    assert cli(env, "records", "execute").returncode == 3
    assert cli(env, "records", "execute", "no-such-batch").returncode == 2
    bad = cli(env, "records", "sweep", "--as-of", "next tuesday")
    assert bad.returncode == 2 and "ISO" in bad.stderr
