"""The inserter's result file: which pieces of a run went into the post (`delivered`) and which it damaged.

Decisions:
- The file is CSV with a header row. A line names its piece by `piece_seq` (or `seq`, `piece`), by `letter_id`,
  or by both (then they must agree); `status` is delivered or damaged; `note` is optional; other columns are
  ignored. Lines are at most 64 KiB, UTF-8 (a BOM is fine).
- All or nothing: every line is checked before anything changes. Bad lines are one 422 naming them (up to 20);
  a result that contradicts an earlier one for the same piece is a 409 naming its line. Sending the same file
  again changes nothing.
- delivered: the piece and its ledger row become delivered (event; the letter's status follows). damaged: the
  piece becomes damaged (event `damaged`) and the next run prints it again; its ledger row stays `sent`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from output import events as names
from output.models import (
    DELIVERED,
    PIECE_DAMAGED,
    PIECE_DELIVERED,
    PIECE_PRINTED,
    RUN_COMPLETED,
    SENT,
    Dispatch,
    Letter,
    PrintPiece,
    PrintRun,
)
from output.service.letters import add_event, refresh_status
from output.service.print_house._errors import PrintResultConflictError, PrintResultsError, PrintRunNotFoundError
from output.service.print_house.runs import check_access
from repository import audit, events
from repository.models import User
from repository.types import utcnow

SEQ_COLUMNS = ("piece_seq", "seq", "piece")
LETTER_COLUMNS = ("letter_id", "letter")
STATUS = ("status",)
STATUSES = (PIECE_DELIVERED, PIECE_DAMAGED)
MAX_LINE = 64 * 1024
MAX_NOTE = 1000
MAX_ERRORS = 20


@dataclass
class ResultReport:
    """What an import changed."""

    run_id: str
    delivered: int = 0
    damaged: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class _Result:
    line: int
    piece: PrintPiece
    status: str
    note: str | None


class _BadLineError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


def _text_lines(stream: BinaryIO) -> Iterator[str]:
    """The file's lines as text, each checked (UTF-8, no NUL, at most MAX_LINE bytes)."""
    for number, raw in enumerate(iter(lambda: stream.readline(MAX_LINE + 1), b""), 1):
        if len(raw) > MAX_LINE:
            raise _BadLineError(number, f"the line is longer than {MAX_LINE // 1024} KiB")
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise _BadLineError(number, "the line is not UTF-8 text") from None
        if "\x00" in text:
            raise _BadLineError(number, "the line contains a NUL character")
        yield text


def _column(header: list[str], names_: tuple[str, ...]) -> int | None:
    return next((header.index(n) for n in names_ if n in header), None)


class _Parser:
    """Checks each line against the run's pieces, collecting the errors."""

    def __init__(self, run: PrintRun, pieces: list[PrintPiece]) -> None:
        self.run = run
        self.by_seq = {p.seq: p for p in pieces}
        self.by_letter = {p.letter_id: p for p in pieces}
        self.seen: dict[str, int] = {}
        self.results: list[_Result] = []
        self.errors: list[dict[str, object]] = []

    def header(self, line: int, cells: list[str]) -> tuple[int | None, int | None, int, int | None]:
        header = [c.strip().lower() for c in cells]
        seq, letter, status = _column(header, SEQ_COLUMNS), _column(header, LETTER_COLUMNS), _column(header, STATUS)
        if status is None or (seq is None and letter is None):
            raise _BadLineError(line, "the first line must be a header naming a status column and piece_seq or "
                                      "letter_id (and optionally note)")
        return seq, letter, status, _column(header, ("note",))

    def _piece(self, seq_cell: str, letter_cell: str) -> PrintPiece:
        piece = None
        if seq_cell:
            if not seq_cell.isdigit():
                raise ValueError(f"piece_seq {seq_cell[:40]!r} is not a piece number")
            piece = self.by_seq.get(int(seq_cell))
            if piece is None:
                raise ValueError(f"print run {self.run.id} has no piece {int(seq_cell)}")
        if letter_cell:
            by_letter = self.by_letter.get(letter_cell)
            if by_letter is None:
                raise ValueError(f"letter {letter_cell[:40]} is not in print run {self.run.id}")
            if piece is not None and piece is not by_letter:
                raise ValueError(f"piece {piece.seq} is letter {piece.letter_id}, not {letter_cell[:40]}")
            piece = by_letter
        if piece is None:
            raise ValueError("name the piece by piece_seq or letter_id")
        return piece

    def row(self, line: int, cells: list[str], columns: tuple[int | None, int | None, int, int | None]) -> None:
        seq, letter, status, note = columns

        def cell(index: int | None) -> str:
            return cells[index].strip() if index is not None and index < len(cells) else ""

        try:
            piece = self._piece(cell(seq), cell(letter))
            value = cell(status).lower()
            if value not in STATUSES:
                raise ValueError(f"status {value[:40]!r} must be delivered or damaged")
            if len(cell(note)) > MAX_NOTE:
                raise ValueError(f"the note is longer than {MAX_NOTE} characters")
            if piece.id in self.seen:
                raise ValueError(f"piece {piece.seq} was already given on line {self.seen[piece.id]}")
        except ValueError as exc:
            self.errors.append({"line": line, "message": str(exc)})
            return
        self.seen[piece.id] = line
        self.results.append(_Result(line, piece, value, cell(note) or None))


def _parse(stream: BinaryIO, run: PrintRun, pieces: list[PrintPiece]) -> list[_Result]:
    parser = _Parser(run, pieces)
    reader = csv.reader(_text_lines(stream))
    try:
        columns = None
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if columns is None:
                columns = parser.header(reader.line_num, cells)
                continue
            parser.row(reader.line_num, cells, columns)
            if len(parser.errors) >= MAX_ERRORS:
                break
        if columns is None:
            raise _BadLineError(1, "the file is empty; expected a header line such as piece_seq,status,note")
    except _BadLineError as exc:
        parser.errors.append({"line": exc.line, "message": exc.message})
    except csv.Error as exc:
        parser.errors.append({"line": reader.line_num, "message": f"not valid CSV: {exc}"})
    if parser.errors:
        first = parser.errors[0]
        more = f" (and {len(parser.errors) - 1} more)" if len(parser.errors) > 1 else ""
        raise PrintResultsError(f"line {first['line']}: {first['message']}{more}; nothing was applied",
                                errors=parser.errors)
    return parser.results


def _apply(session: Session, actor: User, run: PrintRun, rows: dict[str, Dispatch], result: _Result,
           trail: list[dict]) -> None:
    piece, now = result.piece, utcnow()
    row = rows[piece.dispatch_id]
    letter = session.get(Letter, piece.letter_id)
    piece.status, piece.note, piece.result_at = result.status, result.note, now
    detail = f"print run {run.id}, piece {piece.seq}: {result.status} at the inserter"
    if result.status == PIECE_DELIVERED:
        row.state, row.delivered_at, row.updated_at = DELIVERED, now, now
        run.delivered += 1
    else:
        row.updated_at = now
        detail += "; printed again in the next run"
        run.damaged += 1
    add_event(session, row, letter, result.status, detail + (f" ({result.note})" if result.note else ""))
    refresh_status(session, letter)
    trail.append({"actor": actor.username, "action": f"letter.dispatch_{result.status}", "object_type": "dispatch",
                  "object_id": row.id, "details": {"letter_id": letter.id, "channel": row.channel, "run_id": run.id,
                                                   "piece_seq": piece.seq, "note": result.note}})


def import_results(session: Session, *, actor: User, run_id: str, stream: BinaryIO,
                   source_sha256: str | None = None) -> ResultReport:
    """Apply the inserter's result file to a run's pieces, all or nothing (see the module's decisions)."""
    check_access(session, actor=actor, write=True, run_id=run_id)
    # Locked: two imports for one run at once would count twice.
    run = session.execute(select(PrintRun).where(PrintRun.id == run_id).with_for_update()
                          .execution_options(populate_existing=True)).scalar_one_or_none()
    if run is None:
        raise PrintRunNotFoundError(f"print run {run_id} not found")
    pieces = list(session.execute(select(PrintPiece).where(PrintPiece.run_id == run_id)
                                  .order_by(PrintPiece.seq)).scalars())
    results = _parse(stream, run, pieces)
    rows = {r.id: r for r in session.execute(select(Dispatch).join(PrintPiece, PrintPiece.dispatch_id == Dispatch.id)
                                             .where(PrintPiece.run_id == run_id)).scalars()}
    report = ResultReport(run_id=run_id)
    todo = []
    for result in results:
        piece = result.piece
        if piece.status == result.status:
            report.unchanged += 1
        elif piece.status != PIECE_PRINTED or rows[piece.dispatch_id].state != SENT:
            raise PrintResultConflictError(
                f"line {result.line}: piece {piece.seq} was already recorded {piece.status}; a result cannot "
                "change; nothing was applied", line=result.line, piece_seq=piece.seq)
        else:
            todo.append(result)
    trail: list[dict] = []
    for result in todo:
        _apply(session, actor, run, rows, result, trail)
    report.delivered = sum(1 for r in todo if r.status == PIECE_DELIVERED)
    report.damaged = len(todo) - report.delivered
    if todo:
        run.updated_at = utcnow()
        if all(p.status != PIECE_PRINTED for p in pieces):
            run.status = RUN_COMPLETED
    summary = {"delivered": report.delivered, "damaged": report.damaged, "unchanged": report.unchanged,
               "sha256": source_sha256}
    trail.append({"actor": actor.username, "action": names.PRINT_RESULTS_IMPORTED, "object_type": "print_run",
                  "object_id": run.id, "details": summary})
    audit.record_many(session, trail)
    events.emit(session, names.PRINT_RESULTS_IMPORTED, {"run_id": run.id, **summary})
    return report
