"""`postroom documents import`: files from disk as new documents, a chunk per transaction, with a progress bar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

from api.cli_common import console, fail, staff_user
from repository.db import transaction
from repository.errors import RepositoryError
from repository.models import Customer
from repository.service.file_import import FileImportReport, import_files, source_files

documents_app = typer.Typer(help="Documents.", no_args_is_help=True)
SHOWN_REJECTIONS = 20


@documents_app.command("import")
def documents_import(
    paths: Annotated[list[Path], typer.Argument(help="files and directories to import")],
    document_type: Annotated[str, typer.Option("--type", help="the document type of every imported file")],
    as_user: Annotated[str, typer.Option("--as", help="the staff user to import as (needs write on the type)")],
    customer: Annotated[str | None, typer.Option(help="link every document to this customer (external reference)")
                        ] = None,
    recursive: Annotated[bool, typer.Option(help="walk subdirectories")] = True,
    chunk_size: Annotated[int, typer.Option(help="files committed per transaction (1-1000)")] = 100,
    report: Annotated[Path | None, typer.Option(help="write one JSON line per file: its document id or why it "
                                                     "was refused")] = None,
) -> None:
    """Import files as documents: the title is the file name unless a shadow file NAME.metadata.json gives
    title, metadata, customer_ref, customer_id or comment. Exit 1 when some files were refused (the others are
    imported), 2 when nothing could be imported."""
    if missing := [p for p in paths if not p.exists()]:
        fail(f"{missing[0]} does not exist", 2)
    user = staff_user(as_user, 2)
    customer_id = _customer_id(customer) if customer else None
    files = list(source_files(paths, recursive=recursive))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("importing", total=len(files))

            def advance(so_far: FileImportReport) -> None:
                done = len(so_far.imported) + len(so_far.rejected)
                bar.update(task, completed=done, description=f"{len(so_far.imported)} imported, "
                                                             f"{len(so_far.rejected)} refused")

            result = import_files(files, actor=user, document_type=document_type, customer_id=customer_id,
                                  chunk_size=chunk_size, on_chunk=advance)
    except RepositoryError as exc:
        fail(f"nothing imported: {exc.detail}", 2)
    if report is not None:
        _write_report(report, result)
    _print_summary(result)
    if result.rejected:
        raise typer.Exit(1)


def _customer_id(external_ref: str) -> str:
    with transaction(readonly=True) as session:
        found = session.execute(select(Customer.id).where(Customer.external_ref == external_ref)).scalar()
    if found is None:
        fail(f"there is no customer with external reference {external_ref!r}", 2)
    return found


def _write_report(path: Path, result: FileImportReport) -> None:
    with path.open("w", encoding="utf-8") as out:
        for source, document_id in result.imported.items():
            out.write(json.dumps({"path": source, "document_id": document_id}, ensure_ascii=False) + "\n")
        for source, reason in result.rejected.items():
            out.write(json.dumps({"path": source, "error": reason}, ensure_ascii=False) + "\n")


def _print_summary(result: FileImportReport) -> None:
    table = Table()
    table.add_column("result")
    table.add_column("files", justify="right")
    table.add_row("imported", str(len(result.imported)))
    table.add_row("refused", str(len(result.rejected)))
    console.print(table)
    console.print(f"{result.bytes / 1024 / 1024:.1f} MiB imported")
    for source, reason in list(result.rejected.items())[:SHOWN_REJECTIONS]:
        console.print(f"  [yellow]{source}[/yellow]: {reason}")
    if len(result.rejected) > SHOWN_REJECTIONS:
        console.print(f"  ... and {len(result.rejected) - SHOWN_REJECTIONS} more (use --report FILE)")
