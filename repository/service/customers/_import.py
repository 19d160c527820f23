"""Bulk upsert of customers on their external reference, row by row, with a report of what happened."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DataError as SQLDataError
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.orm import Session

from repository import audit, events
from repository.access import require_role
from repository.errors import RepositoryError
from repository.models import Customer, User
from repository.service.customers._profile import WRITE_ROLES, apply_changes, insert_customer

BATCH = 500
KEEP_REJECTIONS = 1000


class MalformedRow(dict):
    """A row the file reader could not make sense of (bad JSON, wrong column count); it carries its errors."""

    def __init__(self, errors: list[dict[str, str]], external_ref: str | None = None) -> None:
        super().__init__()
        self.errors = errors
        self.external_ref = external_ref


@dataclass
class ImportReport:
    """What an import did: counts, and the rejected rows with their line numbers and errors (the first
    `keep` of them; rejected_count counts them all)."""

    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    rejected_count: int = 0
    keep: int = KEEP_REJECTIONS

    @property
    def rows(self) -> int:
        """Rows seen."""
        return self.imported + self.updated + self.unchanged + self.rejected_count

    def reject(self, line: int, external_ref: str | None, errors: list[dict[str, str]]) -> dict[str, Any]:
        """Count a rejected row (and keep it while fewer than `keep` are kept)."""
        entry = {"line": line, "external_ref": external_ref, "errors": errors}
        self.rejected_count += 1
        if len(self.rejected) < self.keep:
            self.rejected.append(entry)
        return entry

    def add(self, other: ImportReport) -> None:
        """Fold another report (of a later chunk) into this one."""
        self.imported += other.imported
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.rejected_count += other.rejected_count
        self.rejected.extend(other.rejected[: max(0, self.keep - len(self.rejected))])

    def as_dict(self) -> dict[str, Any]:
        """The report as the API answers it."""
        return {"imported": self.imported, "updated": self.updated, "unchanged": self.unchanged,
                "rejected_count": self.rejected_count, "rejected": self.rejected,
                "rejected_truncated": self.rejected_count > len(self.rejected)}


def _errors_of(exc: Exception) -> list[dict[str, str]]:
    if isinstance(exc, RepositoryError):
        listed = exc.extra.get("errors")
        if listed:
            return list(listed)
        return [{"field": str(exc.extra.get("field") or ""), "message": exc.detail}]
    if isinstance(exc, SQLDataError):
        return [{"field": "", "message": "a value cannot be stored (text must not contain NUL characters)"}]
    return [{"field": "external_ref", "message": "another change to this customer happened at the same time; "
                                                 "import the row again"}]


def _ref_of(row: dict[str, Any]) -> str | None:
    ref = row.get("external_ref")
    return ref.strip() if isinstance(ref, str) and ref.strip() else None


def _batches(rows: Iterable[tuple[int, dict[str, Any]]]) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    it = iter(rows)
    while batch := list(itertools.islice(it, BATCH)):
        yield batch


def import_customers(session: Session, *, actor: User, rows: Iterable[tuple[int, dict[str, Any]]],
                     source: str = "import") -> ImportReport:
    """Upsert (line, fields) rows on external_ref: new ones are created, changed ones updated, the same ones left
    alone; a bad row is rejected with its errors and the rest go on (each row in its own savepoint)."""
    require_role(actor, *WRITE_ROLES)
    report = ImportReport()
    for batch in _batches(rows):
        refs = {ref for _, row in batch if (ref := _ref_of(row))}
        known = {c.external_ref: c for c in
                 session.execute(select(Customer).where(Customer.external_ref.in_(refs))).scalars()} if refs else {}
        for line, row in batch:
            ref = _ref_of(row)
            if isinstance(row, MalformedRow):
                report.reject(line, row.external_ref or ref, row.errors)
                continue
            existing = known.get(ref) if ref else None
            try:
                with session.begin_nested():
                    if existing is None:
                        known[ref] = insert_customer(session, actor=actor, fields=dict(row), source=source,
                                                     known_new=True)
                        report.imported += 1
                    elif apply_changes(session, actor=actor, customer=existing, changes=dict(row), source=source):
                        report.updated += 1
                    else:
                        report.unchanged += 1
            except (RepositoryError, SQLDataError, SQLIntegrityError) as exc:
                if existing is not None:
                    session.expire(existing)
                report.reject(line, ref, _errors_of(exc))
    return report


def record_import(session: Session, *, actor: User, report: ImportReport, file: str | None, fmt: str) -> None:
    """Audit a whole import run (and emit customers.imported) with its counts; the caller commits it, after the
    run's chunks."""
    require_role(actor, *WRITE_ROLES)
    counts = {k: v for k, v in report.as_dict().items() if k not in ("rejected", "rejected_truncated")}
    audit.record(session, actor=actor.username, action="customers.imported", object_type="customer",
                 details={"file": file, "format": fmt, **counts})
    events.emit(session, events.CUSTOMERS_IMPORTED, {"file": file, **counts})
