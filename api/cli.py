"""The `postroom` command line."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from api.cli_batches import batch_app
from api.cli_common import console, fail, staff_user
from api.cli_documents import documents_app
from api.cli_records import records_app
from api.cli_search import reindex, search_app
from repository import audit, identity, service, vault
from repository.config import get_settings
from repository.content import stage_stream
from repository.db import get_engine, transaction
from repository.errors import RepositoryError
from repository.migrate import upgrade as migrate_upgrade
from repository.runtime import get_runtime

app = typer.Typer(help="Postroom: document repository and correspondence service.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Staff users.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
CLI_ACTOR = "cli"


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to the configured database."""
    migrate_upgrade(get_engine())
    console.print("database is up to date")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="processes serving requests (default POSTROOM_WEB_WORKERS)")] = 0,
) -> None:
    """Run the API, UI and outbox worker (migrating the embedded database first)."""
    import uvicorn

    from api.app import create_app

    settings = get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.database_url is None:
        migrate_upgrade(get_engine())
    workers = workers or settings.web_workers
    if workers > 1:
        # Each process runs its own outbox worker thread; claims never overlap (SKIP LOCKED / BEGIN IMMEDIATE).
        uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers,
                    h11_max_incomplete_event_size=settings.max_header_bytes, log_level="info")
        return
    uvicorn.run(create_app(), host=host, port=port, h11_max_incomplete_event_size=settings.max_header_bytes,
                log_level="info")


@app.command()
def worker() -> None:
    """Deliver outbox events, dispatch letters and run letter batches until stopped (SIGTERM or Ctrl-C)."""
    from api.app import register_subscribers, start_background, stop_background
    from output.compose import reset_pool

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    register_subscribers()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threads = start_background(stop)
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    stop_background(stop, threads)
    reset_pool()  # this process's LibreOffice workers run in their own sessions and would outlive it


@users_app.command("create")
def users_create(
    username: str,
    role: Annotated[list[str], typer.Option("--role", help="repeat for several roles")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
) -> None:
    """Create a staff user."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with transaction() as session:
            user = identity.create_user(session, username=username, password=password, roles=role, actor=CLI_ACTOR)
            console.print(f"created user {user.username} ({', '.join(user.roles)}) id {user.id}")
    except RepositoryError as exc:
        fail(exc.detail)


@users_app.command("exists")
def users_exists(username: str) -> None:
    """Exit 0 when the user exists, 1 when not (for scripts)."""
    from sqlalchemy import select

    from repository.models import User

    with transaction(readonly=True) as session:
        found = session.execute(select(User.id).where(User.username == username)).first()
    raise typer.Exit(0 if found else 1)


@users_app.command("list")
def users_list() -> None:
    """List staff users and their roles."""
    from sqlalchemy import select

    from repository.models import User

    with transaction(readonly=True) as session:
        for user in session.execute(select(User).order_by(User.username)).scalars():
            state = "" if user.active else " (disabled)"
            typer.echo(f"{user.username}\t{','.join(user.roles)}{state}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit hash chain; exit 1 naming the first bad row."""
    with transaction(readonly=True) as session:
        report = audit.verify(session)
    if report.ok:
        console.print(f"audit chain verified: {report.checked} rows")
        return
    fail(f"audit chain broken at row {report.bad_seq}: {report.reason} ({report.checked} rows verified before it)")


def _key_holders() -> None:
    from api.app import register_subscribers

    register_subscribers()  # the domains' own wrapped keys (production packages) rotate and count too


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new key-encryption key and rewrap every data key with it (content is not re-encrypted)."""
    _key_holders()
    runtime = get_runtime()
    with transaction() as session:
        kek_id, count = vault.rotate_keys(session, runtime=runtime, actor=CLI_ACTOR)
    console.print(f"new active key {kek_id}; rewrapped {count} data keys")


@keys_app.command("list")
def keys_list() -> None:
    """The key-encryption keys in the ring: which is active, and how many data keys each still wraps."""
    _key_holders()
    with transaction(readonly=True) as session:
        usage = vault.key_usage(session, runtime=get_runtime())
    table = Table("key", "active", "data keys")
    for kid, active, count in usage:
        table.add_row(kid, "yes" if active else "", str(count))
    console.print(table)


@keys_app.command("retire")
def keys_retire(kek_id: str) -> None:
    """Remove a key that wraps no data key any more (rotate first) from the ring, for good: backups of the
    database that still hold data keys wrapped by it (of documents destroyed since) become unreadable."""
    _key_holders()
    try:
        with transaction() as session:
            vault.retire_key(session, runtime=get_runtime(), kek_id=kek_id, actor=CLI_ACTOR)
    except RepositoryError as exc:
        fail(exc.detail)
    console.print(f"retired {kek_id}")


@app.command("import")
def import_dir(
    directory: Path,
    document_type: Annotated[str, typer.Option("--document-type")],
    customer_id: Annotated[str | None, typer.Option("--customer-id")] = None,
    as_user: Annotated[str, typer.Option("--as", help="the staff user the documents are created by")] = "admin",
) -> None:
    """Import every file under DIRECTORY as a document, one transaction per file."""
    if not directory.is_dir():
        fail(f"{directory} is not a directory")
    from api.app import register_subscribers

    register_subscribers()  # imported templates get the same content checks as uploads
    from sqlalchemy import select

    from repository.models import User

    with transaction(readonly=True) as session:
        user = session.execute(select(User).where(User.username == as_user)).scalar_one_or_none()
        if user is None:
            fail(f"there is no user {as_user!r}; pass --as USERNAME")
        session.expunge(user)
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    settings = get_settings()
    imported, rejected = 0, []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("importing", total=len(files))
        for path in files:
            try:
                with path.open("rb") as f:
                    staged = stage_stream(f, max_bytes=settings.max_upload_bytes, tmp_dir=settings.tmp_dir,
                                          filename=path.name)
                try:
                    with transaction() as session:
                        service.create_document(session, actor=user, title=path.stem or path.name,
                                                document_type=document_type, content=staged,
                                                customer_id=customer_id,
                                                metadata={"source_path": str(path.relative_to(directory))})
                finally:
                    staged.release()
                imported += 1
            except (RepositoryError, OSError) as exc:
                rejected.append((path, getattr(exc, "detail", str(exc))))
            progress.advance(task)
    console.print(f"imported {imported}, rejected {len(rejected)} of {len(files)} files")
    for path, reason in rejected:
        console.print(f"  [yellow]rejected[/yellow] {path}: {reason}")
    if rejected:
        raise typer.Exit(2)


@app.command()
def gc(
    min_age_seconds: Annotated[int, typer.Option(help="leave blobs younger than this (uploads in flight)")] = 3600,
    dry_run: bool = False,
) -> None:
    """Remove stored blobs that no version references."""
    from repository.gc import collect, collect_scratch

    runtime = get_runtime()
    min_age = dt.timedelta(seconds=min_age_seconds)
    report = collect(runtime.store, min_age=min_age, dry_run=dry_run)
    scratch = collect_scratch(runtime.settings.tmp_dir, min_age=min_age, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    console.print(f"scanned {report.scanned} blobs; {verb} {len(report.orphans)} orphaned and "
                  f"{len(report.partial)} partial blobs, and {scratch} abandoned upload spool files")


customers_app = typer.Typer(help="The customer registry.", no_args_is_help=True)
app.add_typer(customers_app, name="customers")


@customers_app.command("import")
def customers_import(
    file: Path,
    as_user: Annotated[str, typer.Option("--as", help="the staff user (admin or helpdesk) to import as")] = "admin",
    fmt: Annotated[str | None, typer.Option(
        "--format", help="csv, jsonl or json (an array; default: from the file)")] = None,
    chunk_size: Annotated[int, typer.Option(help="rows committed per transaction (at most 1000)")] = 500,
    rejects: Annotated[Path | None, typer.Option(help="write every rejected row to this file as JSON lines")] = None,
) -> None:
    """Upsert customers from a CSV (with a header row) or JSON Lines FILE on their external_ref. Exit 1 when some
    rows were rejected (the others are imported), 2 when the file could not be imported at all."""
    import json

    from sqlalchemy import select

    from api.jobs import import_customer_file
    from repository.models import User

    if not file.is_file():
        fail(f"{file} is not a file", 2)
    with transaction(readonly=True) as session:
        user = session.execute(select(User).where(User.username == as_user)).scalar_one_or_none()
        if user is None:
            fail(f"there is no user {as_user!r}; pass --as USERNAME", 2)
        session.expunge(user)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeRemainingColumn())
    reject_file = rejects.open("w", encoding="utf-8") if rejects else None
    try:
        with Progress(*columns, console=console) as progress, file.open("rb") as stream:
            task = progress.add_task("importing", total=max(file.stat().st_size, 1))

            def advance(so_far: service.ImportReport, done: int) -> None:
                progress.update(task, completed=done, description=f"{so_far.rows} rows, {so_far.rejected_count} "
                                                                  "rejected")

            def keep(rejected: dict) -> None:
                reject_file.write(json.dumps(rejected, ensure_ascii=False) + "\n")

            report = import_customer_file(stream, actor=user, fmt=fmt, filename=file.name, chunk_size=chunk_size,
                                          on_progress=advance, on_rejection=keep if reject_file else None)
    except RepositoryError as exc:
        fail(f"nothing imported: {exc.detail}", 2)
    finally:
        if reject_file:
            reject_file.close()
    console.print(f"customers import of {file}")
    table = Table()
    table.add_column("result")
    table.add_column("rows", justify="right")
    for label, count in (("imported", report.imported), ("updated", report.updated),
                         ("unchanged", report.unchanged), ("rejected", report.rejected_count)):
        table.add_row(label, str(count))
    console.print(table)
    for row in report.rejected[:20]:
        problems = "; ".join(f"{e['field'] or 'row'}: {e['message']}" for e in row["errors"])
        console.print(f"  [yellow]line {row['line']}[/yellow] {row['external_ref'] or ''}: {problems}")
    if report.rejected_count > 20:
        console.print(f"  ... and {report.rejected_count - 20} more" + ("" if rejects else " (use --rejects FILE)"))
    if report.rejected_count:
        raise typer.Exit(1)


print_app = typer.Typer(help="Print house runs.", no_args_is_help=True)
app.add_typer(print_app, name="print-run")


@print_app.command("create")
def print_run_create(
    as_user: Annotated[str, typer.Option("--as", help="the staff user (admin) to make the run as")] = "admin",
) -> None:
    """Print every queued print letter and damaged piece awaiting reprint now: one PDF and a CSV manifest. Prints
    the run id and its counts; exit 3 when there is nothing to print."""
    from output.service import print_house
    from repository.types import utcnow

    user = staff_user(as_user)
    try:
        run = print_house.make_run(get_engine(), actor=user, now=utcnow())
    except print_house.NothingToPrintError as exc:
        console.print(exc.detail)
        raise typer.Exit(3) from None
    except RepositoryError as exc:
        fail(exc.detail)
    typer.echo(f"{run.id}\t{run.pieces} pieces\t{run.sheets} sheets\t{run.pages} pages")


@print_app.command("import-results")
def print_run_import_results(
    run_id: str,
    file: Path,
    as_user: Annotated[str, typer.Option("--as", help="the staff user (admin) to import as")] = "admin",
) -> None:
    """Apply the inserter's result FILE (CSV: piece_seq or letter_id, status delivered|damaged, note) to run
    RUN_ID, all or nothing; exit 1 naming the bad lines."""
    from output.service import print_house

    if not file.is_file():
        fail(f"{file} is not a file")
    user = staff_user(as_user)
    try:
        with transaction() as session, file.open("rb") as stream:
            report = print_house.import_results(session, actor=user, run_id=run_id, stream=stream)
    except RepositoryError as exc:
        for error in exc.extra.get("errors", [])[1:]:
            console.print(f"  [yellow]line {error['line']}[/yellow] {error['message']}")
        fail(exc.detail)
    console.print(f"delivered {report.delivered}, damaged {report.damaged}, unchanged {report.unchanged}")


app.add_typer(documents_app, name="documents")
app.add_typer(batch_app, name="batch")
app.add_typer(records_app, name="records")
app.add_typer(search_app, name="search")
app.command("reindex")(reindex)


if __name__ == "__main__":
    app()
