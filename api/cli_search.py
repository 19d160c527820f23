"""`postroom reindex`, `postroom search verify` and `postroom search timeline-backfill`: rebuild the search index
from the repository, compare the index with it, and fill the customer timeline from the kept outbox events."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from api.cli_common import console
from repository.db import get_engine, transaction
from search import service

search_app = typer.Typer(help="Search index checks.", no_args_is_help=True)


def _bar(label: str) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console)


def reindex() -> None:
    """Rebuild the search index from the repository (resumable; searches keep answering meanwhile)."""
    from api.app import register_subscribers

    register_subscribers()
    with _bar("indexing") as bar:
        task = bar.add_task("reindex", total=None)
        done = service.reindex(get_engine(), progress=lambda n, total: bar.update(task, completed=n, total=total))
    console.print(f"indexed {done} documents")


@search_app.command("verify")
def verify(show: Annotated[int, typer.Option(help="ids to list of each kind")] = 20) -> None:
    """Report documents missing from the index, stale in it, or indexed but gone; exit 1 if any."""
    with transaction(readonly=True) as session:
        report = service.verify(session)
    console.print(f"checked {report.checked} documents; {report.queued} waiting in the indexing queue")
    for kind in ("missing", "stale", "extra"):
        ids = getattr(report, kind)
        console.print(f"{kind}: {len(ids)}" + (f"  {', '.join(ids[:show])}" if ids else ""))
    if report.without_text:
        counts = ", ".join(f"{status} {n}" for status, n in sorted(report.without_text.items()))
        console.print(f"found by title and metadata only (no text extracted: {counts}): "
                      f"{', '.join(report.without_text_ids[:show])}")
    if not report.ok:
        console.print("[red]the index does not match the repository; run `postroom reindex`[/red]")
        raise typer.Exit(1)
    console.print("[green]the index matches the repository[/green]")


@search_app.command("timeline-backfill")
def timeline_backfill() -> None:
    """Put every kept outbox event on the customer timeline (documents, letters, delivery events); idempotent."""
    from search.timeline.backfill import backfill

    with _bar("timeline") as bar:
        task = bar.add_task("backfill", total=None)
        added = backfill(get_engine(), progress=lambda n, total: bar.update(task, completed=n, total=total))
    console.print(f"added {added} timeline entries")
