"""`postroom records`: propose a disposition batch now (or count what is due), and carry out approved batches."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from api.cli_common import console, fail
from records.models import DispositionBatch
from records.service.disposition import SweepReport, execute_approved, propose
from records.service.disposition.states import APPROVED, COMPLETED, EXECUTING
from repository.config import get_settings
from repository.db import get_engine, transaction
from repository.errors import RepositoryError

records_app = typer.Typer(help="Records management: disposition.", no_args_is_help=True)


def _as_of(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--as-of {value!r} is not an ISO date or time (such as 2031-01-01T00:00:00Z)", 2)
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _print(report: SweepReport) -> None:
    verb = "due" if report.dry_run else "proposed"
    table = Table(title=f"documents {verb} for disposition as of {report.as_of.isoformat()}")
    table.add_column("class")
    table.add_column("action")
    table.add_column("documents", justify="right")
    for row in report.counts:
        table.add_row(row["class_code"] or "(none)", row["action"], str(row["count"]))
    table.add_row("[bold]total[/bold]", "", f"[bold]{report.total}[/bold]")
    console.print(table)
    if report.more_due:
        console.print("more documents are due than one batch holds (POSTROOM_RECORDS_BATCH_MAX_ITEMS); the next "
                      "sweep proposes them")


@records_app.command("sweep")
def sweep(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what is due by class and action; write nothing")]
    = False,
    as_of: Annotated[str | None, typer.Option("--as-of", help="compare due dates with this time (ISO; UTC if no "
                                                              "zone) instead of now")] = None,
) -> None:
    """Propose one disposition batch of the documents whose retention has ended and that no hold covers, for a
    records manager to approve; prints the batch id. Exit 3 when nothing is due."""
    when = _as_of(as_of)
    try:
        with transaction(readonly=dry_run) as session:
            report = propose(session, actor=get_settings().records_sweep_as, as_of=when, dry_run=dry_run)
    except RepositoryError as exc:
        fail(exc.detail, 2)
    if not report.total:
        console.print(f"nothing is due for disposition as of {report.as_of.isoformat()}")
        raise typer.Exit(3)
    _print(report)
    if report.batch_id:
        console.print(f"proposed disposition batch {report.batch_id}; a records manager approves it with POST "
                      f"/api/v1/disposition/batches/{report.batch_id}/approve")
        print(report.batch_id)


@records_app.command("execute")
def execute(batch_id: Annotated[str | None, typer.Argument(help="only this batch")] = None) -> None:
    """Carry out approved disposition batches (or BATCH_ID) here: destroy, transfer or review each document, then
    file the certificate of destruction. Exit 2 when BATCH_ID cannot be executed now, 3 when nothing was."""
    from api.app import register_subscribers

    register_subscribers()
    if batch_id is not None:
        with transaction(readonly=True) as session:
            batch = session.get(DispositionBatch, batch_id)
            if batch is None:
                fail(f"there is no disposition batch {batch_id}", 2)
            if batch.state not in (APPROVED, EXECUTING):
                fail(f"disposition batch {batch_id} is {batch.state}; only an approved batch can be executed", 2)
    done = execute_approved(get_engine(), batch_id=batch_id)
    if batch_id is not None and not done:
        fail(f"disposition batch {batch_id} did not complete: another process is executing it", 2)
    if not done:
        console.print("no approved disposition batch to execute")
        raise typer.Exit(3)
    query = select(DispositionBatch).where(DispositionBatch.state == COMPLETED)
    if batch_id is not None:
        query = query.where(DispositionBatch.id == batch_id)
    with transaction(readonly=True) as session:
        for batch in session.execute(query.order_by(DispositionBatch.completed_at.desc()).limit(done)).scalars():
            outcomes = ", ".join(f"{n} {k}" for k, n in sorted((batch.summary or {}).get("outcomes", {}).items()))
            console.print(f"disposition batch {batch.id} completed ({outcomes or 'nothing to do'}); certificate "
                          f"{batch.certificate_id}")
            print(batch.id)
