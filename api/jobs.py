"""Job wrappers: long work that commits as it goes, in the caller's place (DESIGN: services never commit; the
request handler, job wrapper or CLI command owns the transaction). The API and the CLI both run these."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

from repository.access import require_role
from repository.customer_import import CHUNK, CustomerFile, chunks
from repository.db import transaction
from repository.models import User
from repository.service.customers import WRITE_ROLES, ImportReport, import_customers, record_import


def import_customer_file(stream: BinaryIO, *, actor: User, fmt: str | None = None, filename: str | None = None,
                         media_type: str | None = None, chunk_size: int = CHUNK,
                         on_progress: Callable[[ImportReport, int], None] | None = None,
                         on_rejection: Callable[[dict[str, Any]], None] | None = None) -> ImportReport:
    """Import a seekable CSV, JSON Lines or JSON array stream of customers in chunks of `chunk_size` rows (at most
    1000), each chunk committed in its own transaction, then audit the run in one more. `on_progress(report so far,
    bytes read)` runs after each committed chunk, `on_rejection(row)` for every rejected row. Nothing is read
    without a writing role, and a file that is not customer CSV, JSON Lines or a JSON array imports nothing."""
    require_role(actor, *WRITE_ROLES)
    source = CustomerFile(stream, fmt=fmt, filename=filename, media_type=media_type)
    report = ImportReport()
    for chunk in chunks(source, chunk_size):
        with transaction() as session:
            part = import_customers(session, actor=actor, rows=chunk)
        if on_rejection is not None:
            for rejected in part.rejected:
                on_rejection(rejected)
        report.add(part)
        if on_progress is not None:
            on_progress(report, source.bytes_read)
    with transaction() as session:
        record_import(session, actor=actor, report=report, file=filename, fmt=source.format)
    return report
