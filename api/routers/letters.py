"""Letters: compose, archive and queue one letter; read it with its ledger; its archived PDF; tracking links.

Who may: creating needs write access to `letter` documents (admin and author by default; add helpdesk to the
type's write roles to let the help desk send letters); reading needs read access to them (every staff role by
default), else 404. Tracking endpoints take no credentials: their tokens are HMAC-signed.
"""

from __future__ import annotations

import base64
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from sqlalchemy.orm import Session

from api.deps import CurrentUser
from api.idempotency import idempotent_create, replay
from output import service as output
from output.channels import InvalidSignatureError
from output.models import CLICKED, OPENED
from output.schemas import LetterIn, LetterOut, letter_out
from repository import service
from repository.config import get_settings
from repository.db import transaction
from repository.errors import NotFoundError

router = APIRouter(prefix="/api/v1/letters", tags=["letters"])
tracking_router = APIRouter(prefix="/t", tags=["tracking"], include_in_schema=False)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, private", "X-Content-Type-Options": "nosniff"}


def _location(body: dict) -> dict[str, str]:
    return {"Location": f"/api/v1/letters/{body['id']}"}


@router.post("", status_code=201, response_model=LetterOut)
def create(body: LetterIn, user: CurrentUser,
           idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Render with the active approved template, compose a PDF/A, archive it, queue dispatch; 201."""
    request = ("POST", "/letters", body.model_dump())
    # A replay must not compose again: look before the slow part (idempotent_create looks again after).
    if idempotency_key is not None and (answer := replay(user, idempotency_key, request, _location)) is not None:
        return answer
    with transaction(readonly=True) as session:
        prepared = output.prepare_letter(session, actor=user, template=body.template, customer_id=body.customer_id,
                                         data=body.data, category=body.category, channel=body.channel)
    composed = output.compose_letter(prepared)  # no transaction held while LibreOffice works

    def make(session: Session) -> dict:
        letter = output.archive_letter(session, actor=user, composed=composed)
        return letter_out(letter, *output.ledger(session, letter_id=letter.id)).model_dump(mode="json")

    return idempotent_create(user, idempotency_key, request, make, headers=_location)


@router.get("/{letter_id}", response_model=LetterOut)
def read(letter_id: str, user: CurrentUser) -> LetterOut:
    """A letter with its status and delivery events per channel."""
    with transaction(readonly=True) as session:
        letter = output.get_letter(session, actor=user, letter_id=letter_id)
        return letter_out(letter, *output.ledger(session, letter_id=letter.id))


@router.get("/{letter_id}/pdf")
def pdf(letter_id: str, user: CurrentUser) -> StreamingResponse:
    """The archived PDF exactly as composed and sent, streamed."""
    with transaction(readonly=True) as session:
        letter, version = output.letter_pdf(session, actor=user, letter_id=letter_id)
        stream = service.read_version(session, version=version)
        headers = {"Content-Length": str(version.size), "ETag": f'"{version.sha256}"', **NO_STORE,
                   "Content-Disposition": f"inline; filename*=UTF-8''{quote(letter.reference)}.pdf"}
    return StreamingResponse(stream, media_type="application/pdf", headers=headers)


@tracking_router.get("/o/{token}.gif")
def opened(token: str) -> Response:
    """The open-tracking pixel: records the first open of a message, answers a 1x1 GIF."""
    settings = get_settings()
    try:
        letter_id, channel = output.verify_open(settings, token)
    except (InvalidSignatureError, ValueError):
        raise NotFoundError("no such tracking link") from None
    with transaction() as session:
        output.record_tracking(session, letter_id=letter_id, channel=channel, kind=OPENED)
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


@tracking_router.get("/c/{token}")
def clicked(token: str, u: Annotated[str, Query(max_length=4000)]) -> RedirectResponse:
    """A click-tracking redirect: records the click and redirects, only to the URL the token signs."""
    settings = get_settings()
    try:
        found = output.verify_click(settings, token, u)
    except (InvalidSignatureError, ValueError):
        found = None
    if found is None:
        raise NotFoundError("no such tracking link")
    letter_id, channel = found
    with transaction() as session:
        output.record_tracking(session, letter_id=letter_id, channel=channel, kind=CLICKED, detail=u)
    return RedirectResponse(u, status_code=302, headers=NO_STORE)
