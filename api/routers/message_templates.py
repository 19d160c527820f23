"""Message templates: the email (subject, text, HTML) and SMS wording sent with letters, per category and locale.

Who may: whoever may write correspondence templates creates, changes and deletes them; whoever may read those sees
them; anyone else gets 404. Changes take If-Match with the ETag from GET (412 when it changed meanwhile).
Templates are Jinja in the letters' sandbox and are checked when saved (422 saying which part and line).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentUser
from api.etags import etag, expected_revision
from api.idempotency import idempotent_create
from output.models import MessageTemplate
from output.service import messages
from repository.db import transaction

router = APIRouter(prefix="/api/v1/message-templates", tags=["message templates"])
_SOURCE = 100_000  # correspondence.rendering.messages.MAX_MESSAGE_SOURCE


class MessageTemplateIn(BaseModel):
    """A new message template: its scope (channel, category or none for all, locale or none for all) and parts."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["email", "sms"]
    category: str = Field(default="", max_length=50)
    locale: str = Field(default="", max_length=35)
    subject: str = Field(default="", max_length=_SOURCE)
    text_body: str = Field(max_length=_SOURCE)
    html_body: str | None = Field(default=None, max_length=_SOURCE)


class MessageTemplateChange(BaseModel):
    """The parts to change; the scope stays."""

    model_config = ConfigDict(extra="forbid")

    subject: str | None = Field(default=None, max_length=_SOURCE)
    text_body: str | None = Field(default=None, max_length=_SOURCE)
    html_body: str | None = Field(default=None, max_length=_SOURCE)


class MessageTemplateOut(BaseModel):
    """A message template as stored."""

    id: str
    channel: str
    category: str
    locale: str
    subject: str
    text_body: str
    html_body: str | None
    revision: int
    created_at: dt.datetime
    updated_at: dt.datetime


class PreviewOut(BaseModel):
    """A template rendered for a letter (or a sample letter), as the channel would get it."""

    subject: str
    text: str
    html: str


def _out(found: MessageTemplate) -> MessageTemplateOut:
    return MessageTemplateOut(id=found.id, channel=found.channel, category=found.category, locale=found.locale,
                              subject=found.subject, text_body=found.text_body, html_body=found.html_body,
                              revision=found.revision, created_at=found.created_at, updated_at=found.updated_at)


def _answer(found: MessageTemplate) -> JSONResponse:
    return JSONResponse(_out(found).model_dump(mode="json"), headers={"ETag": etag(found.revision)})


@router.post("", status_code=201, response_model=MessageTemplateOut)
def create(body: MessageTemplateIn, user: CurrentUser,
           idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Create a message template; 409 when its channel, category and locale already have one. Honours
    Idempotency-Key."""

    def make(session) -> dict:  # noqa: ANN001
        found = messages.create_message_template(session, actor=user, **body.model_dump())
        return _out(found).model_dump(mode="json")

    return idempotent_create(user, idempotency_key, ("POST", "/message-templates", body.model_dump()), make,
                             headers=lambda made: {"Location": f"/api/v1/message-templates/{made['id']}",
                                                   "ETag": etag(made["revision"])})


@router.get("", response_model=list[MessageTemplateOut])
def list_templates(user: CurrentUser,
                   channel: Annotated[Literal["email", "sms"] | None, Query()] = None) -> list[MessageTemplateOut]:
    """The message templates, by channel, category and locale."""
    with transaction(readonly=True) as session:
        return [_out(t) for t in messages.list_message_templates(session, actor=user, channel=channel)]


@router.get("/{template_id}", response_model=MessageTemplateOut)
def read(template_id: str, user: CurrentUser) -> JSONResponse:
    """One message template, with its ETag."""
    with transaction(readonly=True) as session:
        return _answer(messages.get_message_template(session, actor=user, template_id=template_id))


@router.patch("/{template_id}", response_model=MessageTemplateOut)
def change(template_id: str, body: MessageTemplateChange, user: CurrentUser,
           if_match: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Change the parts sent (html_body null removes the HTML body); with If-Match, only if unchanged meanwhile."""
    expected = expected_revision(if_match, "message template")
    with transaction() as session:
        found = messages.update_message_template(session, actor=user, template_id=template_id,
                                                 changes=body.model_dump(exclude_unset=True),
                                                 expected_revision=expected)
        return _answer(found)


@router.delete("/{template_id}", status_code=204)
def delete(template_id: str, user: CurrentUser, if_match: Annotated[str | None, Header()] = None) -> Response:
    """Delete a message template (its letters get the next template that covers them, or the built-in wording)."""
    expected = expected_revision(if_match, "message template")
    with transaction() as session:
        messages.delete_message_template(session, actor=user, template_id=template_id, expected_revision=expected)
    return Response(status_code=204)


@router.get("/{template_id}/preview", response_model=PreviewOut)
def preview(template_id: str, user: CurrentUser, letter_id: Annotated[str | None, Query(max_length=36)] = None,
            sensitive: Annotated[bool | None, Query()] = None) -> PreviewOut:
    """The template rendered for one of your letters (`letter_id`), or for a sample letter."""
    with transaction(readonly=True) as session:
        shown = messages.preview_message(session, actor=user, template_id=template_id, letter_id=letter_id,
                                         sensitive=sensitive)
        return PreviewOut(subject=shown.subject, text=shown.text, html=shown.html)
