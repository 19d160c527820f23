"""Print runs for the print house: make a run now, list and read runs, download a run's PDF and manifest, and
import the inserter's result file.

Who may: whoever may write `print-file` documents (admin by default) makes runs and imports results; whoever may
read them sees runs. Anyone else gets 404. POST with nothing to print answers 409 `nothing-to-print`: the
request is fine, the state is not (like GitHub's answer to a pull request without commits); an empty run is
never made.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentUser
from api.errors import register_error_mapping
from api.idempotency import idempotent_create, replay
from api.uploads import read_form
from output.models import PrintRun
from output.service import print_house
from repository import service
from repository.config import get_settings
from repository.content import StagedContent
from repository.db import transaction
from repository.models import User
from repository.types import utcnow

router = APIRouter(prefix="/api/v1/print-runs", tags=["print runs"])
register_error_mapping([(print_house.NothingToPrintError, 409), (print_house.PrintRunConflictError, 409),
                        (print_house.PrintResultConflictError, 409)])
NO_STORE = {"Cache-Control": "no-store, private", "X-Content-Type-Options": "nosniff"}


class PrintRunOut(BaseModel):
    """A print run: its counts, its documents, and how many pieces await the inserter's result."""

    id: str
    status: str
    scheduled_on: dt.date | None
    duplex: bool
    pieces: int
    pages: int
    sheets: int
    delivered: int
    damaged: int
    awaiting_results: int
    file_document_id: str
    manifest_document_id: str
    created_at: dt.datetime


class ResultReportOut(BaseModel):
    """What a result import changed."""

    run_id: str
    delivered: int
    damaged: int
    unchanged: int


def run_out(run: PrintRun) -> PrintRunOut:
    """The API shape of a run."""
    return PrintRunOut(id=run.id, status=run.status, scheduled_on=run.scheduled_on, duplex=run.duplex,
                       pieces=run.pieces, pages=run.pages, sheets=run.sheets, delivered=run.delivered,
                       damaged=run.damaged, awaiting_results=run.pieces - run.delivered - run.damaged,
                       file_document_id=run.file_document_id, manifest_document_id=run.manifest_document_id,
                       created_at=run.created_at)


def _location(body: dict) -> dict[str, str]:
    return {"Location": f"/api/v1/print-runs/{body['id']}"}


@router.post("", status_code=201, response_model=PrintRunOut)
def create(user: CurrentUser, idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Print every queued print letter and every damaged piece awaiting its reprint now: one presorted, stamped
    PDF and a CSV manifest; 201. 409 when there is nothing to print. Honours Idempotency-Key."""
    request = ("POST", "/print-runs")
    # A replay must not build a run again: look before the slow part (idempotent_create looks again after).
    if idempotency_key is not None and (answer := replay(user, idempotency_key, request, _location)) is not None:
        return answer
    with transaction(readonly=True) as session:  # builds the files without holding the write lock
        built = print_house.build_run(session, plan=print_house.plan_run(session, actor=user, now=utcnow()))
    try:
        def make(session: Session) -> dict:
            return run_out(print_house.record_run(session, actor=user, built=built)).model_dump(mode="json")

        return idempotent_create(user, idempotency_key, request, make, headers=_location)
    finally:
        built.release()


@router.get("", response_model=list[PrintRunOut])
def list_runs(user: CurrentUser, limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> list[PrintRunOut]:
    """Print runs, newest first."""
    with transaction(readonly=True) as session:
        return [run_out(r) for r in print_house.list_runs(session, actor=user, limit=limit, offset=offset)]


@router.get("/{run_id}", response_model=PrintRunOut)
def read(run_id: str, user: CurrentUser) -> PrintRunOut:
    """One print run."""
    with transaction(readonly=True) as session:
        return run_out(print_house.get_run(session, actor=user, run_id=run_id))


def _document(run_id: str, user: User, which: str, media_type: str) -> StreamingResponse:
    with transaction(readonly=True) as session:
        run = print_house.get_run(session, actor=user, run_id=run_id)
        document_id = run.file_document_id if which == "pdf" else run.manifest_document_id
        version = service.get_version(session, actor=user, document_id=document_id)
        stream = service.read_version(session, version=version)
        name = f"print-run-{run.created_at:%Y-%m-%d}-{run.id}.{which}"
        headers = {"Content-Length": str(version.size), "ETag": f'"{version.sha256}"', **NO_STORE,
                   "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}
    return StreamingResponse(stream, media_type=media_type, headers=headers)


@router.get("/{run_id}/file")
def file(run_id: str, user: CurrentUser) -> StreamingResponse:
    """The run's print file: one PDF, pieces in presort order, each sheet's front stamped with its QR code."""
    return _document(run_id, user, "pdf", "application/pdf")


@router.get("/{run_id}/manifest")
def manifest(run_id: str, user: CurrentUser) -> StreamingResponse:
    """The run's CSV manifest: one line per piece, in the file's order."""
    return _document(run_id, user, "csv", "text/csv; charset=utf-8")


def _import(user: User, run_id: str, staged: StagedContent) -> ResultReportOut:
    with transaction() as session, staged.open() as stream:
        report = print_house.import_results(session, actor=user, run_id=run_id, stream=stream,
                                            source_sha256=staged.sha256)
        return ResultReportOut(run_id=report.run_id, delivered=report.delivered, damaged=report.damaged,
                               unchanged=report.unchanged)


@router.post("/{run_id}/results", response_model=ResultReportOut)
async def results(run_id: str, request: Request, user: CurrentUser) -> ResultReportOut:
    """Import the inserter's result file (multipart `file`, CSV: piece_seq or letter_id, status delivered or
    damaged, note), all or nothing: a bad line is a 422 naming it, a contradicting result a 409."""

    def allowed() -> None:
        with transaction(readonly=True) as session:  # a caller who may not is refused before the upload is read
            print_house.check_access(session, actor=user, write=True, run_id=run_id)
            print_house.get_run(session, actor=user, run_id=run_id)

    await run_in_threadpool(allowed)
    settings = get_settings()
    form = await read_form(request, max_bytes=settings.max_upload_bytes, tmp_dir=settings.tmp_dir)
    try:
        return await run_in_threadpool(_import, user, run_id, form.file)
    finally:
        form.file.release()
