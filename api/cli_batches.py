"""`postroom batch`: run a file of letters in this process with a progress bar, resume a batch, show one."""

from __future__ import annotations

import hashlib
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from api.cli_common import console, fail, staff_user
from correspondence.service import approved_schema
from output.compose import get_pool, reset_pool
from output.models import LetterBatch
from output.service import batches
from repository.config import get_settings
from repository.db import transaction
from repository.errors import RepositoryError

batch_app = typer.Typer(help="Letter batches.", no_args_is_help=True)
SHOWN_ERRORS = 20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _start_converters() -> None:
    """Start LibreOffice before taking a batch: a machine without it fails here, with nothing stored."""
    try:
        get_pool().start()
    except RepositoryError as exc:
        fail(f"the converters cannot start: {exc.detail}", 2)


def _run(batch_id: str, owner: str) -> batches.Progress:
    """Run a batch this process holds, with a progress bar; Ctrl-C or SIGTERM stops after the chunks in flight."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    try:
        with Progress(*columns, console=console) as bar:
            first = batches.progress_of(batch_id)
            task = bar.add_task("letters", total=first.rows_total,
                                completed=first.rows_done + first.rows_failed)

            def advance(p: batches.Progress) -> None:
                bar.update(task, completed=p.rows_done + p.rows_failed,
                           description=f"{p.rows_done} letters, {p.rows_failed} failed")

            return batches.BatchRunner(batch_id, owner=owner, stop=stop, on_progress=advance).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _report(batch_id: str) -> None:
    with transaction(readonly=True) as session:
        batch = session.get(LetterBatch, batch_id)
        errors = batches.failed_rows(session, batch_id=batch_id, limit=SHOWN_ERRORS)
        table = Table(title=f"batch {batch.id} ({batch.template_name} {batch.template_version})")
        table.add_column("")
        table.add_column("", justify="right")
        for label, value in (("status", batch.status), ("rows", batch.rows_total), ("letters", batch.rows_done),
                             ("failed", batch.rows_failed),
                             ("pending", batch.rows_total - batch.rows_done - batch.rows_failed),
                             ("pages", batch.pages), ("runs", batch.runs)):
            table.add_row(label, str(value))
        console.print(table)
        if batch.last_error:
            console.print(f"[yellow]last error:[/yellow] {batch.last_error}")
        for row in errors:
            who = row.customer_ref or row.customer_id or ""
            console.print(f"  [yellow]row {row.row_no}[/yellow] {who}: {row.error}")
        if batch.rows_failed > len(errors):
            console.print(f"  ... and {batch.rows_failed - len(errors)} more (GET /api/v1/batches/{batch.id}/errors)")
        pending = batch.rows_total - batch.rows_done - batch.rows_failed
    print(batch_id)
    if pending:
        raise typer.Exit(3)
    if errors:
        raise typer.Exit(1)


@batch_app.command("run")
def run(
    file: Path,
    template: Annotated[str, typer.Option(help="the template's name or id (its approved version is used)")],
    as_user: Annotated[str, typer.Option("--as", help="the staff user the letters are made by")] = "admin",
    category: Annotated[str | None, typer.Option(help="the letters' category (default: the template's)")] = None,
    channel: Annotated[str | None, typer.Option(help="send every letter by this channel")] = None,
) -> None:
    """Make one archived letter per row of a CSV, JSON Lines or JSON array FILE (customer_ref or customer_id, then
    the data), here, with a progress bar; prints the batch id. Exit 1 when some rows failed, 3 when rows are left
    pending (stopped: `postroom batch resume ID`), 2 when the batch could not be created."""
    from api.app import register_subscribers

    if not file.is_file():
        fail(f"{file} is not a file", 2)
    register_subscribers()
    user = staff_user(as_user, 2)
    owner = batches.new_owner()
    _start_converters()
    try:
        with transaction() as session, file.open("rb") as stream:
            schema = approved_schema(session, actor=user, template=template)
            source = batches.BatchFile(stream, filename=file.name, schema=schema)
            batch = batches.create_batch(session, actor=user, template=template, rows=source.rows(),
                                         category=category, channel=channel, source_name=file.name,
                                         source_sha256=_sha256(file), max_rows=get_settings().batch_max_rows,
                                         owner=owner)
            batch_id = batch.id
    except RepositoryError as exc:
        fail(f"no batch created: {exc.detail}", 2)
    console.print(f"batch {batch_id}: running")
    try:
        _run(batch_id, owner)
    finally:
        reset_pool()  # the LibreOffice workers run in their own sessions and would outlive this command
    _report(batch_id)


@batch_app.command("resume")
def resume(batch_id: str) -> None:
    """Run the pending rows of a batch that stopped (or whose runner crashed and whose lease has run out)."""
    from api.app import register_subscribers

    register_subscribers()
    owner = batches.new_owner()
    _start_converters()
    if batches.claim_next(None, owner=owner, batch_id=batch_id) is None:
        fail(f"batch {batch_id} is not runnable now: it does not exist, has finished, or another runner holds it", 2)
    try:
        _run(batch_id, owner)
    finally:
        reset_pool()
    _report(batch_id)


@batch_app.command("show")
def show(batch_id: str) -> None:
    """A batch's counts and first failed rows."""
    with transaction(readonly=True) as session:
        if session.get(LetterBatch, batch_id) is None:
            fail(f"there is no batch {batch_id}", 2)
    _report(batch_id)
