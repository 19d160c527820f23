"""Letter batches: a template and rows (a CSV or JSON Lines file, or a JSON array) in, 202; progress, per-row
errors and cancelling. The letters are made by a batch runner (in `postroom serve`, `postroom worker` or
`postroom batch run`), chunk by chunk.

Who may: creating needs write access to `letter` documents (admin and author by default); a batch is visible to
whoever may create letters and to its creator, else 404.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentUser
from api.idempotency import idempotent_create
from api.uploads import read_form, stage_body
from correspondence.service import approved_schema
from output.models import LetterBatch
from output.schemas import BatchIn, BatchOut, BatchRowError, batch_out, batch_row_error
from output.service import batches
from repository.config import get_settings
from repository.content import StagedContent
from repository.db import transaction
from repository.errors import InvalidInputError, UnsupportedMediaTypeError
from repository.models import User

router = APIRouter(prefix="/api/v1/batches", tags=["batches"])
FILE_TYPES = ("text/csv", "application/x-ndjson", "application/jsonl")
FIRST_ERRORS = 20


def _location(body: dict) -> dict[str, str]:
    return {"Location": f"/api/v1/batches/{body['id']}"}


def _out(session: Session, batch: LetterBatch) -> dict:
    errors = batches.failed_rows(session, batch_id=batch.id, limit=FIRST_ERRORS)
    return batch_out(batch, errors).model_dump(mode="json")


def _from_json(staged: StagedContent) -> BatchIn:
    try:
        with staged.open() as stream:
            return BatchIn.model_validate(json.load(stream))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInputError(f"{where}: {first['msg']}", field=where) from None
    except (ValueError, RecursionError) as exc:
        raise InvalidInputError(f"the body is not valid JSON: {exc}") from None


def _create_from_file(user: User, staged: StagedContent, fields: dict[str, str], declared: str | None,
                      key: str | None) -> JSONResponse:
    template = (fields.get("template") or "").strip()
    if not template:
        raise InvalidInputError("the form needs a template (name or id)", field="template")
    category, channel = fields.get("category") or None, fields.get("channel") or None
    request = ("POST", "/batches", template, category, channel, staged.sha256)

    def make(session: Session) -> dict:
        schema = approved_schema(session, actor=user, template=template)
        with staged.open() as stream:
            source = batches.BatchFile(stream, filename=staged.filename or None, media_type=declared, schema=schema)
            batch = batches.create_batch(session, actor=user, template=template, rows=source.rows(),
                                         category=category, channel=channel, source_name=staged.filename or "",
                                         source_sha256=staged.sha256, max_rows=get_settings().batch_max_rows)
            session.flush()
            return _out(session, batch)

    return idempotent_create(user, key, request, make, status_code=202, headers=_location)


def _create_from_rows(user: User, staged: StagedContent, key: str | None) -> JSONResponse:
    body = _from_json(staged)
    request = ("POST", "/batches", body.model_dump())

    def make(session: Session) -> dict:
        rows = ((n, batches.row_from_json(row)) for n, row in enumerate(body.rows, start=1))
        batch = batches.create_batch(session, actor=user, template=body.template, rows=rows, category=body.category,
                                     channel=body.channel, source_name="(request body)")
        session.flush()
        return _out(session, batch)

    return idempotent_create(user, key, request, make, status_code=202, headers=_location)


@router.post("", status_code=202, response_model=BatchOut, responses={202: {"description": "accepted"}})
async def create(request: Request, user: CurrentUser,
                 idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Queue a batch: JSON `{template, rows, channel?, category?}`, or multipart with `template` (and optional
    `category`, `channel`) and a CSV or JSON Lines `file`; 202 with the batch, which runs in the background."""
    settings = get_settings()
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "multipart/form-data":
        form = await read_form(request, max_bytes=settings.max_upload_bytes, tmp_dir=settings.tmp_dir)
        staged, fields, declared = form.file, form.fields, None
    elif media in FILE_TYPES or media == "application/json":
        staged, fields, declared = await stage_body(request, settings.max_upload_bytes, settings.tmp_dir), {}, media
    else:
        raise UnsupportedMediaTypeError(
            "send JSON {template, rows}, or multipart/form-data with a template field and a CSV or JSON Lines "
            f"file; not {media or 'a body without a Content-Type'}")
    try:
        if media == "application/json":
            return await run_in_threadpool(_create_from_rows, user, staged, idempotency_key)
        if media != "multipart/form-data":
            fields = {k: v for k, v in request.query_params.items() if k in ("template", "category", "channel")}
        return await run_in_threadpool(_create_from_file, user, staged, fields, declared, idempotency_key)
    finally:
        staged.release()


@router.get("", response_model=list[BatchOut])
def list_batches(user: CurrentUser, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[dict]:
    """The newest batches the caller may see."""
    with transaction(readonly=True) as session:
        return [_out(session, b) for b in batches.list_batches(session, actor=user, limit=limit)]


@router.get("/{batch_id}", response_model=BatchOut)
def read(batch_id: str, user: CurrentUser) -> dict:
    """A batch's status, counts and first failed rows."""
    with transaction(readonly=True) as session:
        return _out(session, batches.get_batch(session, actor=user, batch_id=batch_id))


@router.get("/{batch_id}/errors", response_model=list[BatchRowError])
def errors(batch_id: str, user: CurrentUser, after: Annotated[int, Query(ge=0)] = 0,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[BatchRowError]:
    """Failed rows in row order, `limit` at a time from after row `after`."""
    with transaction(readonly=True) as session:
        batches.get_batch(session, actor=user, batch_id=batch_id)
        return [batch_row_error(r) for r in batches.failed_rows(session, batch_id=batch_id, after=after, limit=limit)]


@router.post("/{batch_id}/cancel", response_model=BatchOut)
def cancel(batch_id: str, user: CurrentUser) -> dict:
    """Stop a queued or running batch; letters already made stay and are sent; 409 when it has finished."""
    with transaction() as session:
        batch = batches.get_batch(session, actor=user, batch_id=batch_id)
        batches.cancel_batch(session, actor=user, batch=batch)
        session.flush()
        return _out(session, batch)

