"""Webhooks for providers: SMS delivery receipts and email bounces, signed with `Postroom-Signature`.

No bearer token: each webhook is authenticated by its HMAC signature (output/channels/signatures.py) with its own
secret (POSTROOM_SMS_WEBHOOK_SECRET, POSTROOM_EMAIL_WEBHOOK_SECRET); without a secret the webhook does not exist
(404). Answers: 200 with what changed (`applied`, `unchanged`, `noted`), 202 `ignored` for a message that is not
ours (providers retry anything that is not 2xx), 401 for a bad or stale signature, 422 for a malformed body.
"""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from output.channels import InvalidSignatureError
from output.channels._sms import read_receipt
from output.channels.signatures import HEADER, verify_webhook
from output.service import webhooks
from repository.config import get_settings
from repository.db import transaction
from repository.errors import ContentTooLargeError, InvalidInputError, NotFoundError, UnsupportedMediaTypeError

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])

MAX_RECEIPT_BYTES = 64 * 1024
MAX_BOUNCE_BYTES = 10 * 1024 * 1024  # a DSN may carry the returned message, PDF included
DSN_TYPES = ("message/rfc822", "multipart/report", "message/delivery-status", "text/plain")


class EmailBounceIn(BaseModel):
    """A bounce reported by a mail provider: the message (Message-ID or letter id), hard or soft, and why."""

    model_config = ConfigDict(extra="ignore")

    message_id: str | None = Field(default=None, max_length=500)
    letter_id: str | None = Field(default=None, max_length=36)
    type: Literal["hard", "soft"]
    reason: str = Field(default="", max_length=4000)

    @model_validator(mode="after")
    def _names_a_message(self) -> EmailBounceIn:
        if not (self.message_id or self.letter_id):
            raise ValueError("give message_id or letter_id")
        return self


async def _signed_body(request: Request, secret: SecretStr, limit: int, setting: str) -> bytes:
    """The raw body, after checking its size and its signature."""
    if not secret.get_secret_value():
        raise NotFoundError(f"this webhook is not configured (set POSTROOM_{setting})")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ContentTooLargeError(f"the body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ContentTooLargeError(f"the body is larger than {limit} bytes")
    try:
        verify_webhook(bytes(body), request.headers.get(HEADER), secret, now=time.time())
    except InvalidSignatureError as exc:
        raise webhooks.WebhookSignatureError(str(exc)) from None
    return bytes(body)


def _apply(apply) -> webhooks.Outcome:  # noqa: ANN001
    with transaction() as session:
        return apply(session)


async def _answer(apply) -> JSONResponse:  # noqa: ANN001
    outcome = await run_in_threadpool(_apply, apply)  # the database work stays off the event loop
    body = {"result": outcome.result, "letter_id": outcome.letter_id, "channel": outcome.channel,
            "state": outcome.state}
    return JSONResponse(body, status_code=202 if outcome.result == webhooks.IGNORED else 200)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


@router.post("/sms/receipts")
async def sms_receipt(request: Request) -> JSONResponse:
    """An SMS delivery receipt ({"id", "status", "reference"?, "error"?}): delivered or bounced plus fallback."""
    raw = await _signed_body(request, get_settings().sms_webhook_secret, MAX_RECEIPT_BYTES, "SMS_WEBHOOK_SECRET")
    try:
        receipt = read_receipt(raw)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    return await _answer(lambda session: webhooks.apply_sms_receipt(session, receipt=receipt))


@router.post("/email/bounces")
async def email_bounce(request: Request) -> JSONResponse:
    """A bounce as JSON ({"message_id" | "letter_id", "type": "hard"|"soft", "reason"}) or as a raw DSN."""
    raw = await _signed_body(request, get_settings().email_webhook_secret, MAX_BOUNCE_BYTES,
                             "EMAIL_WEBHOOK_SECRET")
    media_type = _media_type(request)
    if media_type == "application/json":
        try:
            bounce = EmailBounceIn.model_validate_json(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
            raise InvalidInputError(f"not a bounce: {problems}") from None

        def apply(session: Session) -> webhooks.Outcome:
            return webhooks.apply_email_bounce(session, hard=bounce.type == "hard", reason=bounce.reason,
                                               letter_id=bounce.letter_id, message_id=bounce.message_id)

        return await _answer(apply)
    if media_type not in DSN_TYPES:
        raise UnsupportedMediaTypeError(f"send application/json or a DSN ({', '.join(DSN_TYPES)}), not "
                                        f"{media_type or 'no Content-Type'}")
    if media_type == "multipart/report":  # the body is the report's parts; its boundary is in the HTTP header
        raw = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode() + raw
    return await _answer(lambda session: webhooks.apply_dsn(session, raw=raw))
