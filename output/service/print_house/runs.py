"""Print runs: the queued print letters (and damaged pieces awaiting their reprint), presorted, merged into one
stamped PDF with a CSV manifest, both stored as admin-only `print-file` documents; the ledger rows go `sent`.

Decisions:
- Three steps, like letters, so the slow middle one holds no write transaction (SQLite has one writer):
  `plan_run` reads what is to print, `build_run` writes the PDF and the manifest to temporary files (a read-only
  transaction will do: it only reads letters), `record_run` stores both and writes the run, its pieces and the
  ledger in the caller's write transaction. `create_run` runs the three on one session.
- A row is never in two runs: `record_run` locks the planned ledger rows and refuses the whole run
  (PrintRunConflictError) if any was taken by another run meanwhile; the pieces' unique (run, ledger row) and
  unique `reprint_of` hold the same in the database.
- A piece is the letter's archived PDF (output/service/archived.py), exactly as composed; a letter whose document
  was destroyed (erasure, disposition) is never planned: its print row fails instead.
- Presort: country, then postcode (spaces and case ignored), then letter reference; pieces are numbered 1..n in
  that order. The address is the customer's at the time of the run.
- Who may: whoever may write `print-file` documents (admin by default) makes runs and imports results; whoever
  may read them sees runs. Anyone else gets 404, for the list too.
- A reprint is a new piece pointing at the damaged one (`reprint_of`); its ledger row stays `sent`, with the new
  run and piece as its provider reference.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from output import events as names
from output.models import (
    QUEUED,
    SENT,
    SUPPRESSED,
    Dispatch,
    Letter,
    PrintPiece,
    PrintRun,
)
from output.service.archived import archived_version_id, awaiting_reprint
from output.service.consent import consent_withdrawn
from output.service.letters import LETTER_TYPE, add_event, refresh_status
from output.service.print_house._errors import NothingToPrintError, PrintRunConflictError, PrintRunNotFoundError
from output.service.print_house.layout import Layout, Source, write_print_file
from repository import audit, events, vault
from repository.access import AccessDeniedError, can_read, can_write
from repository.config import Settings, get_settings
from repository.content import stage_stream
from repository.db import is_postgres
from repository.models import Customer, Document, DocumentVersion, User
from repository.runtime import get_runtime
from repository.service import create_document, get_type
from repository.service.documents import DESTROYED
from repository.types import new_id, utcnow

PRINT = "print"
PRINT_FILE = "print-file"
MANIFEST_COLUMNS = ("run_id", "piece_seq", "letter_id", "reference", "customer_ref", "name", "address", "postcode",
                    "country", "pages", "sheets", "first_page", "reprint_of")
_IN_CHUNK = 500  # ids per IN (...) list


@dataclass(frozen=True)
class PlannedPiece:
    """A letter to print in the run: its ledger row, its address, and where its archived PDF is."""

    dispatch_id: str
    letter_id: str
    reference: str
    customer_ref: str
    name: str
    address: str
    postcode: str
    country: str
    document_id: str
    blob_key: str
    size: int
    reprint_of: str | None = None  # the damaged piece this one replaces
    reprint_label: str = ""  # that piece as "<run id>:<seq>"

    def sort_key(self) -> tuple[str, str, str]:
        """The presort: country, postcode (spaces and case ignored), letter reference."""
        return (self.country.strip().upper(), "".join(self.postcode.split()).upper(), self.reference)


@dataclass(frozen=True)
class RunPlan:
    """What a run will print, presorted: piece n is pieces[n - 1]."""

    run_id: str
    duplex: bool
    pieces: tuple[PlannedPiece, ...]


@dataclass
class BuiltRun:
    """A planned run's print file and manifest, written to temporary files until `record_run` stores them."""

    plan: RunPlan
    layouts: list[Layout]
    pdf_path: Path
    manifest_path: Path

    def release(self) -> None:
        """Delete the temporary files."""
        self.pdf_path.unlink(missing_ok=True)
        self.manifest_path.unlink(missing_ok=True)


def _deny(actor: User, run_id: str | None, attempted: str) -> AccessDeniedError:
    what = f"print run {run_id}" if run_id else "print runs"
    return AccessDeniedError(f"{what} not found", actor=actor.username, object_type="print_run", object_id=run_id,
                             attempted=attempted)


def check_access(session: Session, *, actor: User, write: bool, run_id: str | None = None) -> None:
    """AccessDeniedError (a 404) unless the caller may make runs (`write`) or see them."""
    doc_type = get_type(session, name=PRINT_FILE)
    if not (can_write(actor, doc_type) if write else can_read(actor, doc_type)):
        raise _deny(actor, run_id, "change print runs" if write else "read print runs")


def get_run(session: Session, *, actor: User, run_id: str) -> PrintRun:
    """The run if the caller may see print runs; PrintRunNotFoundError (or a denial, also 404) otherwise."""
    check_access(session, actor=actor, write=False, run_id=run_id)
    run = session.get(PrintRun, run_id)
    if run is None:
        raise PrintRunNotFoundError(f"print run {run_id} not found")
    return run


def list_runs(session: Session, *, actor: User, limit: int = 50, offset: int = 0) -> list[PrintRun]:
    """Runs, newest first."""
    check_access(session, actor=actor, write=False)
    stmt = select(PrintRun).order_by(PrintRun.created_at.desc(), PrintRun.id).limit(limit).offset(offset)
    return list(session.execute(stmt).scalars())


def _address(customer: Customer) -> str:
    return ", ".join(part for part in [*(customer.address_lines or []), customer.city or ""] if part)


def _planned(row: Dispatch, letter: Letter, customer: Customer, version: DocumentVersion,
             damaged: PrintPiece | None = None) -> PlannedPiece:
    return PlannedPiece(
        dispatch_id=row.id, letter_id=letter.id, reference=letter.reference, customer_ref=customer.external_ref,
        name=customer.name, address=_address(customer), postcode=customer.postcode or "",
        country=customer.country or "", document_id=version.document_id, blob_key=version.blob_key,
        size=version.size, reprint_of=damaged.id if damaged else None,
        reprint_label=f"{damaged.run_id}:{damaged.seq}" if damaged else "")


def _with_letter(stmt):  # noqa: ANN001, ANN202
    return (stmt.join(Letter, Letter.id == Dispatch.letter_id)
            .join(Customer, Customer.id == Letter.customer_id)
            .join(Document, Document.id == Letter.document_id)
            .join(DocumentVersion, DocumentVersion.id == archived_version_id(Document.id))
            .where(Document.state != DESTROYED))  # its pending rows fail (output/service/archived.py)


def plan_run(session: Session, *, actor: User, now: dt.datetime, settings: Settings | None = None) -> RunPlan:
    """What a run made now would print, presorted; NothingToPrintError when that is nothing."""
    check_access(session, actor=actor, write=True)
    if not can_read(actor, get_type(session, name=LETTER_TYPE)):
        raise _deny(actor, None, "print letters")
    settings = settings or get_settings()
    queued = _with_letter(select(Dispatch, Letter, Customer, DocumentVersion)).where(
        Dispatch.channel == PRINT, Dispatch.state == QUEUED, Dispatch.next_attempt_at <= now)
    pieces = {row.id: _planned(row, letter, customer, version)
              for row, letter, customer, version in session.execute(queued)
              if consent_withdrawn(session, settings, row, letter) is None}  # (the consent subscriber settles it)
    damaged = _with_letter(select(Dispatch, Letter, Customer, DocumentVersion, PrintPiece)
                           .join(PrintPiece, PrintPiece.dispatch_id == Dispatch.id)).where(
        awaiting_reprint(), Dispatch.state == SENT)
    for row, letter, customer, version, piece in session.execute(damaged):
        pieces.setdefault(row.id, _planned(row, letter, customer, version, piece))
    if not pieces:
        raise NothingToPrintError("nothing to print: no letter is queued for print and no damaged piece awaits "
                                  "its reprint")
    ordered = tuple(sorted(pieces.values(), key=PlannedPiece.sort_key))
    return RunPlan(run_id=new_id(), duplex=settings.print_duplex, pieces=ordered)


def _cell(value: str) -> str:
    # A spreadsheet runs a cell that starts like a formula: keep names and addresses inert (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _write_manifest(path: Path, plan: RunPlan, layouts: list[Layout]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MANIFEST_COLUMNS)
        for seq, (p, layout) in enumerate(zip(plan.pieces, layouts, strict=True), 1):
            writer.writerow([plan.run_id, seq, p.letter_id, p.reference, _cell(p.customer_ref), _cell(p.name),
                             _cell(p.address), _cell(p.postcode), _cell(p.country), layout.pages, layout.sheets,
                             layout.first_page, p.reprint_label])


def build_run(session: Session, *, plan: RunPlan, settings: Settings | None = None) -> BuiltRun:
    """Merge, stamp and lay out the planned pieces into a temporary PDF and manifest (only reads the session)."""
    settings = settings or get_settings()
    runtime = get_runtime()
    tmp = settings.tmp_dir
    tmp.mkdir(parents=True, exist_ok=True)
    sources = [Source(letter_id=p.letter_id, seq=seq,
                      open=functools.partial(vault.open_blob, session, runtime, document_id=p.document_id,
                                             blob_key=p.blob_key, size=p.size))
               for seq, p in enumerate(plan.pieces, 1)]
    built = BuiltRun(plan=plan, layouts=[], pdf_path=tmp / f"print-run-{plan.run_id}.pdf",
                     manifest_path=tmp / f"print-run-{plan.run_id}.csv")
    try:
        built.layouts = write_print_file(sources, built.pdf_path, duplex=plan.duplex, tmp_dir=tmp)
        _write_manifest(built.manifest_path, plan, built.layouts)
    except BaseException:
        built.release()
        raise
    return built


def _store(session: Session, *, actor: User, path: Path, title: str, filename: str, run_id: str) -> Document:
    settings = get_settings()
    with path.open("rb") as f:
        staged = stage_stream(f, max_bytes=max(settings.max_upload_bytes, path.stat().st_size),
                              tmp_dir=settings.tmp_dir, filename=filename)
    try:
        return create_document(session, actor=actor, title=title, document_type=PRINT_FILE, content=staged,
                               metadata={"print_run_id": run_id}, comment="print run")
    finally:
        staged.release()


def _lock_rows(session: Session, ids: list[str]) -> dict[str, Dispatch]:
    rows: dict[str, Dispatch] = {}
    for i in range(0, len(ids), _IN_CHUNK):
        stmt = select(Dispatch).where(Dispatch.id.in_(ids[i : i + _IN_CHUNK])).order_by(Dispatch.id)
        if is_postgres(session):
            stmt = stmt.with_for_update()
        rows.update((r.id, r) for r in session.execute(stmt.execution_options(populate_existing=True)).scalars())
    return rows


def _check_still_free(session: Session, plan: RunPlan, rows: dict[str, Dispatch]) -> None:
    replaced = [p.reprint_of for p in plan.pieces if p.reprint_of]
    taken: set[str] = set()
    for i in range(0, len(replaced), _IN_CHUNK):
        taken.update(session.execute(select(PrintPiece.reprint_of).where(
            PrintPiece.reprint_of.in_(replaced[i : i + _IN_CHUNK]))).scalars())
    for p in plan.pieces:
        row = rows.get(p.dispatch_id)
        free = row is not None and row.channel == PRINT and (
            row.state == SENT and p.reprint_of not in taken if p.reprint_of else row.state == QUEUED)
        if not free and row is not None and row.state == SUPPRESSED:
            raise PrintRunConflictError(f"letter {p.reference} was suppressed while this run was being built "
                                        f"({row.reason}); make the run again without it", letter_id=p.letter_id)
        if not free:
            raise PrintRunConflictError(f"letter {p.reference} was taken by another print run while this one was "
                                        "being built; make the run again", letter_id=p.letter_id)
    letters = [p.letter_id for p in plan.pieces]
    for i in range(0, len(letters), _IN_CHUNK):  # erased or disposed of while the run was being built
        gone = session.execute(select(Letter.id, Letter.reference).join(Document, Document.id == Letter.document_id)
                               .where(Letter.id.in_(letters[i : i + _IN_CHUNK]), Document.state == DESTROYED)
                               .limit(1)).first()
        if gone is not None:
            raise PrintRunConflictError(f"letter {gone.reference} was destroyed (erasure or disposition) while this "
                                        "run was being built; make the run again", letter_id=gone.id)


def record_run(session: Session, *, actor: User, built: BuiltRun, scheduled_on: dt.date | None = None) -> PrintRun:
    """Store the built run's PDF and manifest, write the run and its pieces, and mark the ledger rows `sent`."""
    check_access(session, actor=actor, write=True)
    plan, now = built.plan, utcnow()
    rows = _lock_rows(session, [p.dispatch_id for p in plan.pieces])
    _check_still_free(session, plan, rows)
    day = now.strftime("%Y-%m-%d")
    file_doc = _store(session, actor=actor, path=built.pdf_path, title=f"Print run {day} {plan.run_id} (PDF)",
                      filename=f"print-run-{day}-{plan.run_id}.pdf", run_id=plan.run_id)
    manifest_doc = _store(session, actor=actor, path=built.manifest_path,
                          title=f"Print run {day} {plan.run_id} (manifest)",
                          filename=f"print-run-{day}-{plan.run_id}.csv", run_id=plan.run_id)
    session.flush()
    pages = sum(layout.sheets * 2 if plan.duplex else layout.pages for layout in built.layouts)  # blank backs too
    run = PrintRun(id=plan.run_id, scheduled_on=scheduled_on, duplex=plan.duplex, pieces=len(plan.pieces),
                   pages=pages,
                   sheets=sum(layout.sheets for layout in built.layouts), delivered=0, damaged=0,
                   file_document_id=file_doc.id, manifest_document_id=manifest_doc.id, created_by=actor.id,
                   created_at=now, updated_at=now)
    session.add(run)
    session.flush()
    trail = []
    for seq, (p, layout) in enumerate(zip(plan.pieces, built.layouts, strict=True), 1):
        session.add(PrintPiece(id=new_id(), run_id=run.id, seq=seq, dispatch_id=p.dispatch_id, letter_id=p.letter_id,
                               pages=layout.pages, sheets=layout.sheets, first_page=layout.first_page,
                               reprint_of=p.reprint_of, created_at=now))
        row = rows[p.dispatch_id]
        row.state, row.provider_ref, row.sent_at, row.updated_at = SENT, f"{run.id}:{seq}", now, now
        row.attempts, row.lease_until, row.next_attempt_at = row.attempts + 1, None, None
        letter = session.get(Letter, p.letter_id)
        detail = f"print run {run.id}, piece {seq}" + (f" (reprint of {p.reprint_label})" if p.reprint_of else "")
        add_event(session, row, letter, SENT, detail)
        refresh_status(session, letter)
        trail.append({"actor": actor.username, "action": "letter.dispatch_sent", "object_type": "dispatch",
                      "object_id": row.id, "details": {"letter_id": letter.id, "channel": PRINT,
                                                       "provider_ref": row.provider_ref,
                                                       "reprint_of": p.reprint_label or None}})
    summary = {"pieces": run.pieces, "pages": run.pages, "sheets": run.sheets, "duplex": run.duplex,
               "reprints": sum(1 for p in plan.pieces if p.reprint_of), "file_document_id": file_doc.id,
               "manifest_document_id": manifest_doc.id, "scheduled_on": scheduled_on}
    trail.append({"actor": actor.username, "action": names.PRINT_RUN_CREATED, "object_type": "print_run",
                  "object_id": run.id, "details": summary})
    audit.record_many(session, trail)
    events.emit(session, names.PRINT_RUN_CREATED, {"run_id": run.id, **summary,
                                                   "scheduled_on": str(scheduled_on) if scheduled_on else None})
    return run


def create_run(session: Session, *, actor: User, now: dt.datetime, scheduled_on: dt.date | None = None) -> PrintRun:
    """Plan, build and record a run on one session (see the module's decisions); NothingToPrintError if empty."""
    built = build_run(session, plan=plan_run(session, actor=actor, now=now))
    try:
        return record_run(session, actor=actor, built=built, scheduled_on=scheduled_on)
    finally:
        built.release()
