"""Documents, versions, content, check-out and check-in."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.batch_uploads import BatchForm, read_batch_form
from api.deps import CurrentUser
from api.etags import etag as revision_etag
from api.etags import expected_revision
from api.forms import flag_field, json_array_field, json_object_field
from api.idempotency import idempotent_create
from api.uploads import read_form
from repository import service
from repository.config import get_settings
from repository.content import StagedContent
from repository.db import transaction
from repository.errors import InvalidInputError
from repository.identity import username_of
from repository.models import Document, DocumentType, DocumentVersion, User
from repository.schemas import CheckoutOut, DocumentOut, DocumentPatch, VersionOut
from repository.service.documents import lock_holder

router = APIRouter(prefix="/api/v1/documents", tags=["documents"])

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
SEND_BATCH = 4 * 1024 * 1024


def _take(stream: Iterator[bytes], size: int) -> bytes:
    """Up to about `size` bytes from the stream (empty at its end)."""
    parts, total = [], 0
    for chunk in stream:
        parts.append(chunk)
        total += len(chunk)
        if total >= size:
            break
    return b"".join(parts)


async def _send(first: bytes, stream: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The content for a StreamingResponse: decrypted in the thread pool a few MiB at a time (one hand-off per
    segment would leave the event loop and the decrypting thread mostly waiting for each other), the next batch
    decrypting while the event loop sends the one before."""
    yield first
    upcoming = asyncio.ensure_future(run_in_threadpool(_take, stream, SEND_BATCH))
    try:
        while batch := await upcoming:
            upcoming = asyncio.ensure_future(run_in_threadpool(_take, stream, SEND_BATCH))
            yield batch
    finally:
        if not upcoming.done():  # the client went away: let the batch in hand finish, decrypt no further
            await asyncio.wait([upcoming])


def document_out(session: Session, d: Document) -> DocumentOut:
    """The API shape of a document."""
    holder = lock_holder(d)
    return DocumentOut(
        id=d.id, title=d.title, document_type=session.get(DocumentType, d.document_type_id).name,
        customer_id=d.customer_id, metadata=d.meta, version=d.version_label, state=d.state,
        checked_out_by=username_of(session, holder), lock_expires_at=d.lock_expires_at if holder else None,
        created_by=username_of(session, d.created_by), created_at=d.created_at, updated_at=d.updated_at,
        revision=d.revision,
    )


def version_out(session: Session, v: DocumentVersion) -> VersionOut:
    """The API shape of a version."""
    return VersionOut(version=v.label, sha256=v.sha256, size=v.size, media_type=v.media_type, filename=v.filename,
                      created_by=username_of(session, v.created_by), created_at=v.created_at, comment=v.comment)


def etag(d: Document) -> str:
    """The document's entity tag: its revision."""
    return revision_etag(d.revision)


def _parse_metadata(raw: str | None) -> dict[str, Any] | None:
    return json_object_field(raw, "metadata")


def _bool(raw: str | None, name: str) -> bool:
    return bool(flag_field(raw, name))


@router.post("", status_code=201, responses={201: {"description": "Created"}})
async def upload(request: Request, user: CurrentUser,
                 idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Upload a new document (multipart: file, title, document_type, customer_id?, metadata?)."""
    settings = get_settings()
    sealer = await run_in_threadpool(_prepare_upload, user, None)
    form = await read_form(request, max_bytes=settings.max_upload_bytes, tmp_dir=settings.tmp_dir, sealer=sealer)
    staged = form.file
    try:
        return await run_in_threadpool(_create, user, form.fields, staged, idempotency_key)
    finally:
        staged.release()


@router.post("/batch", status_code=201, responses={201: {"description": "Created"}})
async def upload_batch(request: Request, user: CurrentUser,
                       idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Upload up to 100 small documents of one type at once, all or none (multipart: `file` parts, document_type,
    customer_id?, items? (a JSON array, one object per file: title, customer_id, metadata, comment))."""
    form = await read_batch_form(request, tmp_dir=get_settings().tmp_dir)
    try:
        return await run_in_threadpool(_create_batch, user, form, idempotency_key)
    finally:
        form.release()


def _create_batch(user: User, form: BatchForm, key: str | None = None) -> JSONResponse:
    fields = form.fields
    if not fields.get("document_type"):
        raise InvalidInputError("the form needs a 'document_type' field", field="document_type")
    items = _batch_items(fields.get("items"), len(form.files))
    documents = [service.NewDocument(
        title=extra.get("title") or staged.filename or f"document {i + 1}", content=staged,
        customer_id=extra.get("customer_id") or fields.get("customer_id") or None,
        metadata=extra.get("metadata") or {}, comment=extra.get("comment", ""))
        for i, (staged, extra) in enumerate(zip(form.files, items, strict=True))]

    def make(session: Session) -> dict:
        ids = service.create_documents(session, actor=user, document_type=fields["document_type"], items=documents)
        return {"documents": [
            {"id": document_id, "version": "1.0", "sha256": d.content.sha256, "size": d.content.size,
             "document_type": fields["document_type"], "title": d.title.strip(), "customer_id": d.customer_id}
            for document_id, d in zip(ids, documents, strict=True)]}

    request = ("POST", "/documents/batch", fields, [(f.sha256, f.size, f.filename) for f in form.files])
    return idempotent_create(user, key, request, make)


def _batch_items(raw: str | None, files: int) -> list[dict[str, Any]]:
    """The per-file `items` (empty objects when absent): a JSON array with one object per file."""
    if raw is None:
        return [{} for _ in range(files)]
    items = json_array_field(raw, "items")
    if len(items) != files or not all(isinstance(item, dict) for item in items):
        raise InvalidInputError(f"items must be a JSON array of {files} objects, one per file part", field="items")
    for i, item in enumerate(items):
        if unknown := sorted(set(item) - {"title", "customer_id", "metadata", "comment"}):
            raise InvalidInputError(f"items[{i}] has an unknown key {unknown[0]!r}", field="items")
        if not isinstance(item.get("metadata", {}), dict):
            raise InvalidInputError(f"items[{i}].metadata must be a JSON object", field="items")
        if wrong := [k for k in ("title", "customer_id", "comment") if not isinstance(item.get(k, ""), str)]:
            raise InvalidInputError(f"items[{i}].{wrong[0]} must be a string", field="items")
    return items


def _prepare_upload(user: User, document_id: str | None):  # noqa: ANN202
    """Check that the caller may upload here and open an encrypting sink for the content."""
    with transaction(readonly=True) as session:
        return service.prepare_upload(session, actor=user, document_id=document_id)


def _create(user: User, fields: dict[str, str], staged: StagedContent, key: str | None) -> JSONResponse:
    metadata = _parse_metadata(fields.get("metadata"))
    for required in ("title", "document_type"):
        if not fields.get(required):
            raise InvalidInputError(f"the form needs a {required!r} field", field=required)

    def make(session: Session) -> dict:
        doc = service.create_document(
            session, actor=user, title=fields["title"], document_type=fields["document_type"], content=staged,
            customer_id=fields.get("customer_id") or None, metadata=metadata, comment=fields.get("comment", ""),
        )
        version = service.get_version(session, actor=user, document_id=doc.id)
        return {"id": doc.id, "version": version.label, "sha256": version.sha256, "size": version.size,
                "media_type": version.media_type, "document_type": fields["document_type"], "title": doc.title}

    request = ("POST", "/documents", fields, staged.sha256, staged.size)
    return idempotent_create(user, key, request, make,
                             headers=lambda body: {"Location": f"/api/v1/documents/{body['id']}"})


@router.get("")
def list_documents(
    user: CurrentUser,
    document_type: Annotated[str | None, Query(max_length=100)] = None,
    customer_id: Annotated[str | None, Query(max_length=36)] = None,
    trashed: bool = False,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict:
    """Documents the caller may read, newest first; follow `next_cursor` for more."""
    with transaction(readonly=True) as session:
        page = service.list_documents(session, actor=user, document_type=document_type, customer_id=customer_id,
                                      trashed=trashed, cursor=cursor, limit=limit)
        items = [document_out(session, d).model_dump(mode="json") for d in page.items]
    return {"items": items, "next_cursor": page.next_cursor}


@router.get("/{document_id}", response_model=DocumentOut)
def get_document(document_id: str, user: CurrentUser, response: Response) -> DocumentOut:
    """A document's metadata and state, with an ETag for PATCH."""
    with transaction(readonly=True) as session:
        doc = service.get_document(session, actor=user, document_id=document_id)
        response.headers["ETag"] = etag(doc)
        return document_out(session, doc)


@router.patch("/{document_id}", response_model=DocumentOut)
def patch_document(document_id: str, body: DocumentPatch, user: CurrentUser, response: Response,
                   if_match: Annotated[str | None, Header()] = None) -> DocumentOut:
    """Change title and/or metadata; with If-Match, only if nobody changed the document meanwhile (else 412)."""
    expected = expected_revision(if_match, "document")
    with transaction() as session:
        doc = service.update_document(session, actor=user, document_id=document_id, expected_revision=expected,
                                      title=body.title, metadata=body.metadata)
        response.headers["ETag"] = etag(doc)
        return document_out(session, doc)


@router.delete("/{document_id}", status_code=204)
def delete_document(document_id: str, user: CurrentUser) -> Response:
    """Move a document to the trash."""
    with transaction() as session:
        service.trash_document(session, actor=user, document_id=document_id)
    return Response(status_code=204)


@router.post("/{document_id}/restore", response_model=DocumentOut)
def restore_document(document_id: str, user: CurrentUser) -> DocumentOut:
    """Bring a document back from the trash."""
    with transaction() as session:
        return document_out(session, service.restore_document(session, actor=user, document_id=document_id))


@router.get("/{document_id}/versions", response_model=list[VersionOut])
def versions(document_id: str, user: CurrentUser) -> list[VersionOut]:
    """The version history, oldest first."""
    with transaction(readonly=True) as session:
        return [version_out(session, v) for v in service.list_versions(session, actor=user, document_id=document_id)]


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) for one satisfiable byte range; None to send everything; ValueError if unsatisfiable."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # multi-range or malformed: RFC 9110 lets us ignore it and send the whole
    first, last = m.group(1), m.group(2)
    if not first:
        n = int(last)
        if n == 0:
            raise ValueError
        return max(0, size - n), size
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    if start >= size or end <= start:
        raise ValueError
    return start, end


@router.get("/{document_id}/content")
def content(
    document_id: str,
    user: CurrentUser,
    version: Annotated[str | None, Query(max_length=20)] = None,
    range_: Annotated[str | None, Header(alias="Range")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The content of the current version (or `?version=`), streamed; supports Range and If-None-Match."""
    with transaction(readonly=True) as session:
        v = service.get_version(session, actor=user, document_id=document_id, version=version)
        tag = f'"{v.sha256}"'
        headers = {
            "ETag": tag,
            "Accept-Ranges": "bytes",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(v.filename or document_id)}",
            "X-Document-Version": v.label,
        }
        if if_none_match and tag in [t.strip() for t in if_none_match.split(",")]:
            return Response(status_code=304, headers=headers)
        try:
            span = _range(range_, v.size)
        except ValueError:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{v.size}"})
        start, end = span or (0, v.size)
        stream = service.read_version(session, version=v, start=start, end=end)
        media_type = v.media_type
    first = next(stream, b"")  # fail before the status line is sent if the content cannot be read
    headers["Content-Length"] = str(end - start)
    status = 200
    if span is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{v.size}"

    return StreamingResponse(_send(first, stream), status_code=status, media_type=media_type, headers=headers)


@router.post("/{document_id}/checkout", response_model=CheckoutOut)
def checkout(document_id: str, user: CurrentUser) -> CheckoutOut:
    """Check the document out to the caller (409 when someone else holds it)."""
    with transaction() as session:
        doc = service.checkout(session, actor=user, document_id=document_id)
        return CheckoutOut(document_id=doc.id, checked_out_by=user.username, expires_at=doc.lock_expires_at)


@router.delete("/{document_id}/checkout", status_code=204)
def cancel_checkout(document_id: str, user: CurrentUser,
                    reason: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    """The holder cancels the check-out; an admin breaks another user's, with `?reason=`."""
    with transaction() as session:
        service.cancel_checkout(session, actor=user, document_id=document_id, reason=reason)
    return Response(status_code=204)


def _has_body(request: Request) -> bool:
    return bool(request.headers.get("content-type") or request.headers.get("transfer-encoding")
                or request.headers.get("content-length", "0") not in ("", "0"))


@router.post("/{document_id}/checkin", status_code=201, response_model=VersionOut)
async def checkin(document_id: str, request: Request, user: CurrentUser) -> VersionOut:
    """Check in new content as the next version (multipart: file, major?, comment?); without a file (or without a
    body) the caller's saved working copy becomes the version."""
    settings = get_settings()
    fields: dict[str, str] = {}
    staged = None
    if _has_body(request):
        sealer = await run_in_threadpool(_prepare_upload, user, document_id)
        form = await read_form(request, max_bytes=settings.max_upload_bytes, tmp_dir=settings.tmp_dir,
                               sealer=sealer, require_file=False)
        fields, staged = form.fields, form.file
    try:
        return await run_in_threadpool(_checkin, document_id, user, fields, staged)
    finally:
        if staged is not None:
            staged.release()


def _checkin(document_id: str, user: User, fields: dict[str, str], staged: StagedContent | None) -> VersionOut:
    major = _bool(fields.get("major"), "major")
    with transaction() as session:
        v = service.checkin(session, document_id=document_id, actor=user, content=staged, major=major,
                            comment=fields.get("comment", ""))
        return version_out(session, v)


class WorkingCopyOut(BaseModel):
    """The caller's saved, not yet checked-in working copy of a document they have checked out."""

    document_id: str
    sha256: str
    size: int
    media_type: str
    filename: str
    saved_at: dt.datetime


def _working_out(w: service.WorkingCopy) -> WorkingCopyOut:
    return WorkingCopyOut(document_id=w.document_id, sha256=w.sha256, size=w.size, media_type=w.media_type,
                          filename=w.filename, saved_at=w.saved_at)


@router.put("/{document_id}/working-copy", response_model=WorkingCopyOut)
async def save_working_copy(document_id: str, request: Request, user: CurrentUser) -> WorkingCopyOut:
    """Save content as the caller's working copy of a document they have checked out (multipart: file); check it
    in later with POST .../checkin without a file."""
    settings = get_settings()
    sealer = await run_in_threadpool(_prepare_upload, user, document_id)
    form = await read_form(request, max_bytes=settings.max_upload_bytes, tmp_dir=settings.tmp_dir, sealer=sealer)
    staged = form.file
    try:
        return await run_in_threadpool(_save_working_copy, document_id, user, staged)
    finally:
        staged.release()


def _save_working_copy(document_id: str, user: User, staged: StagedContent) -> WorkingCopyOut:
    with transaction() as session:
        return _working_out(service.save_working_copy(session, actor=user, document_id=document_id,
                                                      content=staged))


@router.get("/{document_id}/working-copy")
def working_copy(document_id: str, user: CurrentUser) -> Response:
    """The caller's working copy, streamed (404 for anyone but the lock holder, or when none was saved)."""
    with transaction(readonly=True) as session:
        w, stream = service.read_working_copy(session, actor=user, document_id=document_id)
    first = next(stream, b"")  # fail before the status line is sent if the content cannot be read
    headers = {
        "ETag": f'"{w.sha256}"',
        "Content-Length": str(w.size),
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(w.filename or document_id)}",
        "X-Working-Copy-Saved-At": w.saved_at.isoformat(),
    }

    return StreamingResponse(_send(first, stream), media_type=w.media_type, headers=headers)
