"""Message templates: what an email (subject, text, HTML) or an SMS says when it carries or announces a letter.

Decisions:
- A template covers one channel, one letter category or every category without its own (`category` ""), and
  one locale or every locale (`locale` ""). For a letter the most specific wins: category and the customer's
  locale, category and its language, category alone, then the same without the category; with none, the
  built-in wording (DEFAULTS, in English) is used, so nothing changes until an author writes one.
- Whoever may write correspondence templates (the `template` document type's write roles) manages them; whoever
  may read those sees them; anyone else gets 404. Every change is audited and emits an event.
- The Jinja runs in the letters' sandbox (correspondence/rendering/messages.py) and sees `customer` (as letters
  see it), `letter` (id, reference, category, template, template_version, pages), `portal_url`, `sensitive`,
  `channel` and `today`. A template is checked when it is saved: it must compile and render for a sample letter.
- A template that still fails when a letter is sent (a value it did not expect) does not hold the letter up: the
  built-in wording goes instead and the failure is logged with the template's id.
- What the channels add stays theirs: a sensitive email never attaches the PDF and always carries the portal
  link (added when the template left it out); an SMS ends with the portal link, so the link is taken out of an
  SMS text that printed it; tracked links are swapped in after rendering.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import html as html_lib
import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from correspondence.service import (
    SAMPLE_CUSTOMER,
    TEMPLATE_DOCUMENT_TYPE,
    CompiledMessage,
    compile_message,
    customer_context,
    render_message,
)
from output import events as names
from output.models import Letter, MessageTemplate
from output.service import policy
from output.service._errors import MessageTemplateNotFoundError
from output.service.letters import get_letter
from output.service.tracking import portal_url
from repository import audit, events
from repository import service as repo
from repository.access import can_read, can_write, deny_read, deny_write
from repository.config import get_settings
from repository.errors import DuplicateError, InvalidInputError, PreconditionFailedError, RepositoryError
from repository.locales import normalise_locale
from repository.models import Customer, User
from repository.types import utcnow

log = logging.getLogger(__name__)
CHANNELS = ("email", "sms")
_CATEGORY = re.compile(r"[a-z][a-z0-9_-]{0,49}")  # as letters and batches take it
SUBJECT_CHARS = 250  # a rendered subject is one line, cut to this
_PARTS = ("subject", "text_body", "html_body")
_PART_NAMES = {"subject": "subject", "text_body": "text", "html_body": "html"}
DEFAULTS: dict[str, dict[str, str | None]] = {
    "email": {
        "subject": "Your letter {{ letter.reference }}",
        "text_body": "{{ customer.salutation }},\n\n{% if sensitive %}you have a new letter ({{ letter.reference }})."
                     " Read it securely here:\n{{ portal_url }}\n{% else %}please find your letter "
                     "{{ letter.reference }} attached.\n{% endif %}",
        "html_body": None,  # the text, paragraph by paragraph
    },
    "sms": {"subject": "", "text_body": "You have a new letter ({{ letter.reference }}) in your Postroom inbox:",
            "html_body": None},
}


@dataclass(frozen=True)
class RenderedMessage:
    """A message ready for its channel; `template_id` is None for the built-in wording, `source` says which."""

    subject: str
    text: str
    html: str
    template_id: str | None = None
    source: str = "built-in wording"  # what wrote it, for the ledger's sent event and the audit trail


# -- managing templates -------------------------------------------------------------------------------------


def _template_type(session: Session):  # noqa: ANN202
    return repo.get_type(session, name=TEMPLATE_DOCUMENT_TYPE)


def _may_read(session: Session, actor: User) -> bool:
    return can_read(actor, _template_type(session))


def _require_write(session: Session, actor: User, template_id: str | None, what: str) -> None:
    doc_type = _template_type(session)
    if not can_read(actor, doc_type):
        raise deny_read(actor, "message_template", template_id or "list")
    if not can_write(actor, doc_type):
        raise deny_write(actor, "message_template", template_id, what)


def _to_change(session: Session, actor: User, template_id: str, expected_revision: int | None,
               what: str) -> MessageTemplate:
    """The template, locked, if the actor may change it and it is still at the expected revision."""
    found = get_message_template(session, actor=actor, template_id=template_id, lock=True)
    _require_write(session, actor, template_id, what)
    if expected_revision is not None and expected_revision != found.revision:
        raise PreconditionFailedError(f"message template {template_id} is at revision {found.revision}, not "
                                      f"{expected_revision}: read it again")
    return found


def list_message_templates(session: Session, *, actor: User, channel: str | None = None) -> list[MessageTemplate]:
    """The message templates the actor may see (none if it may not read correspondence templates)."""
    if not _may_read(session, actor):
        return []
    query = select(MessageTemplate).order_by(MessageTemplate.channel, MessageTemplate.category,
                                             MessageTemplate.locale)
    if channel is not None:
        query = query.where(MessageTemplate.channel == channel)
    return list(session.execute(query).scalars())


def get_message_template(session: Session, *, actor: User, template_id: str, lock: bool = False) -> MessageTemplate:
    """One message template; MessageTemplateNotFoundError when it does not exist or the actor may not read it."""
    found = session.get(MessageTemplate, template_id, with_for_update=lock or None)
    if found is None:
        raise MessageTemplateNotFoundError(f"message template {template_id} not found")
    if not _may_read(session, actor):
        raise deny_read(actor, "message_template", template_id)
    return found


def create_message_template(session: Session, *, actor: User, channel: str, category: str = "", locale: str = "",
                            subject: str = "", text_body: str, html_body: str | None = None) -> MessageTemplate:
    """A new message template, checked (see the module's decisions); 409 when its channel, category and locale
    already have one."""
    _require_write(session, actor, None, "create message templates")
    fields = _checked(channel=channel, category=category, locale=locale, subject=subject, text_body=text_body,
                      html_body=html_body)
    taken = session.execute(select(MessageTemplate.id).where(
        MessageTemplate.channel == fields["channel"], MessageTemplate.category == fields["category"],
        MessageTemplate.locale == fields["locale"])).scalar_one_or_none()
    if taken is not None:
        raise DuplicateError(f"{_scope(fields)} already has a message template ({taken}): change that one")
    now = utcnow()
    found = MessageTemplate(**fields, revision=1, created_by=actor.id, updated_by=actor.id, created_at=now,
                            updated_at=now)
    session.add(found)
    session.flush()
    _record(session, actor, names.MESSAGE_TEMPLATE_CREATED, found, parts=_parts_of(found))
    return found


def update_message_template(session: Session, *, actor: User, template_id: str, changes: dict[str, Any],
                            expected_revision: int | None = None) -> MessageTemplate:
    """Change a template's subject, text_body or html_body (the scope stays); 412 if it changed meanwhile."""
    found = _to_change(session, actor, template_id, expected_revision, "change message templates")
    unknown = sorted(set(changes) - set(_PARTS))
    if unknown:
        raise InvalidInputError(f"only subject, text_body and html_body can change, not {', '.join(unknown)}; "
                                "for another channel, category or locale create a template", field=unknown[0])
    current = {name: getattr(found, name) for name in ("channel", "category", "locale", *_PARTS)}
    fields = _checked(**{**current, **changes})
    changed = {name: fields[name] for name in _PARTS if fields[name] != current[name]}
    if not changed:
        return found  # nothing new: no revision, no trail
    for name, value in changed.items():
        setattr(found, name, value)
    found.revision += 1
    found.updated_by, found.updated_at = actor.id, utcnow()
    session.flush()
    # The trail keeps every wording a template had, so what a customer was sent can be read back by revision.
    _record(session, actor, names.MESSAGE_TEMPLATE_UPDATED, found, changed=changed,
            previous={name: current[name] for name in changed})
    return found


def delete_message_template(session: Session, *, actor: User, template_id: str,
                            expected_revision: int | None = None) -> None:
    """Delete a template: its letters go back to the next one that covers them, or the built-in wording."""
    found = _to_change(session, actor, template_id, expected_revision, "delete message templates")
    _record(session, actor, names.MESSAGE_TEMPLATE_DELETED, found, previous=_parts_of(found))
    session.delete(found)
    session.flush()


def preview_message(session: Session, *, actor: User, template_id: str, letter_id: str | None = None,
                    sensitive: bool | None = None) -> RenderedMessage:
    """The template rendered for one of the actor's visible letters (or a sample letter), as it would be sent."""
    found = get_message_template(session, actor=actor, template_id=template_id)
    if letter_id is None:
        context = _sample_context(found.channel, found.category or "general",
                                  bool(sensitive) if sensitive is not None else False)
    else:
        letter = get_letter(session, actor=actor, letter_id=letter_id)
        settings = get_settings()
        context = message_context(letter, session.get(Customer, letter.customer_id), channel=found.channel,
                                  link=portal_url(settings, letter.id),
                                  sensitive=policy.sensitive(settings, letter.category) if sensitive is None
                                  else sensitive)
    return _render(_parts_of(found), context, locale=context["customer"].get("locale"), template_id=found.id)


# -- sending ------------------------------------------------------------------------------------------------


def message_context(letter: Letter, customer: Customer, *, channel: str, link: str | None,
                    sensitive: bool) -> dict[str, Any]:
    """What a message template sees for one letter on one channel."""
    return {"customer": customer_context(customer), "channel": channel, "portal_url": link or "",
            "sensitive": sensitive, "today": utcnow().date(),
            "letter": {"id": letter.id, "reference": letter.reference, "category": letter.category,
                       "template": letter.template_name, "template_version": letter.template_version,
                       "pages": letter.pages, "created_at": letter.created_at}}


def message_for(session: Session, *, letter: Letter, customer: Customer, channel: str, link: str | None,
                sensitive: bool) -> RenderedMessage:
    """The subject and bodies of `letter`'s message on `channel` (see the module's decisions)."""
    context = message_context(letter, customer, channel=channel, link=link, sensitive=sensitive)
    locale = customer.locale or ""
    chosen = _choose(session, channel=channel, category=letter.category, locale=locale)
    source = "built-in wording"
    if chosen is not None:
        try:
            rendered = _render(_parts_of(chosen), context, locale=locale, template_id=chosen.id)
            return dataclasses.replace(rendered, source=f"message template {chosen.id} revision {chosen.revision}")
        except RepositoryError as exc:  # the template failed on this letter's values: send the built-in wording
            log.warning("message template %s failed for letter %s (%s); the built-in wording is sent instead",
                        chosen.id, letter.id, exc.detail)
            source = f"built-in wording (message template {chosen.id} revision {chosen.revision} failed: " \
                     f"{exc.detail[:200]})"
    return dataclasses.replace(_render(DEFAULTS[channel], context, locale=locale, template_id=None), source=source)


def _choose(session: Session, *, channel: str, category: str, locale: str) -> MessageTemplate | None:
    parts = locale.split("-") if locale else []
    locales = [*("-".join(parts[:n]) for n in range(len(parts), 0, -1)), ""]  # zh-Hans-CN, zh-Hans, zh, any
    candidates = list(session.execute(select(MessageTemplate).where(
        MessageTemplate.channel == channel, MessageTemplate.category.in_([category, ""]),
        MessageTemplate.locale.in_(locales))).scalars())
    order = [(c, loc) for c in dict.fromkeys((category, "")) for loc in locales]
    rank = {scope: i for i, scope in enumerate(order)}
    candidates.sort(key=lambda t: rank.get((t.category, t.locale), len(rank)))
    return candidates[0] if candidates else None


# -- internals ----------------------------------------------------------------------------------------------


def _parts_of(found: MessageTemplate) -> dict[str, str | None]:
    return {name: getattr(found, name) for name in _PARTS}


@functools.lru_cache(maxsize=256)
def _compiled(part: str, source: str, html: bool) -> CompiledMessage:
    return compile_message(source, part=part, html=html)


def _render(parts: dict[str, str | None], context: dict[str, Any], *, locale: str | None,
            template_id: str | None) -> RenderedMessage:
    link = context.get("portal_url") or ""
    subject = render_message(_compiled("subject", parts["subject"] or "", False), context, locale=locale)
    text = render_message(_compiled("text", parts["text_body"] or "", False), context, locale=locale)
    if context.get("channel") == "sms" and link:
        # The SMS channel ends every text with the link, never shortened: out of the text goes the template's
        # copy, with anything stuck to it (a query string, a full stop).
        text = " ".join(re.sub(re.escape(link) + r"\S*", " ", text).split())
    source = parts["html_body"]
    page = render_message(_compiled("html", source, True), context, locale=locale) if source else \
        _html_of(text, link)
    return RenderedMessage(subject=" ".join(subject.split())[:SUBJECT_CHARS], text=text, html=page,
                           template_id=template_id)


def _html_of(text: str, link: str) -> str:
    """The text body as HTML paragraphs, the portal link a link (for a template without an HTML body)."""
    page = "<p>" + html_lib.escape(text).replace("\n\n", "</p><p>").replace("\n", "<br>") + "</p>"
    if link:
        shown = html_lib.escape(link)
        page = page.replace(shown, f'<a href="{shown}">{shown}</a>')
    return page


def _scope(fields: dict[str, Any]) -> str:
    category = f"category {fields['category']!r}" if fields["category"] else "every category"
    locale = f"locale {fields['locale']}" if fields["locale"] else "every locale"
    return f"the {fields['channel']} channel for {category} and {locale}"


def _checked(*, channel: str, category: str, locale: str, subject: str | None, text_body: str | None,
             html_body: str | None) -> dict[str, Any]:
    """The fields, normalised and checked: channel, scope, which parts the channel takes, and every part
    compiled and rendered for a sample letter (sensitive and not)."""
    if channel not in CHANNELS:
        raise InvalidInputError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}", field="channel")
    category = (category or "").strip().lower()
    if category and not _CATEGORY.fullmatch(category):
        raise InvalidInputError("category must be a letter category (a-z, 0-9, _ and -, starting with a letter, "
                                "at most 50) or empty for every category", field="category")
    locale = normalise_locale(locale) if (locale or "").strip() else ""
    subject, text_body = subject or "", text_body or ""
    html_body = html_body if html_body and html_body.strip() else None
    if not text_body.strip():
        raise InvalidInputError("text_body is required: the message's plain text", field="text_body")
    if channel == "email" and not subject.strip():
        raise InvalidInputError("an email message needs a subject", field="subject")
    if channel == "sms" and (subject.strip() or html_body):
        raise InvalidInputError("an SMS message is text only: leave subject and html_body out",
                                field="subject" if subject.strip() else "html_body")
    fields = {"channel": channel, "category": category, "locale": locale, "subject": subject,
              "text_body": text_body, "html_body": html_body}
    for sensitive in (False, True):
        _render(fields, _sample_context(channel, category or "general", sensitive), locale=locale or None,
                template_id=None)
    return fields


def _sample_context(channel: str, category: str, sensitive: bool) -> dict[str, Any]:
    return {"customer": dict(SAMPLE_CUSTOMER), "channel": channel, "sensitive": sensitive,
            "portal_url": "https://portal.example.com/portal/letters/sample", "today": utcnow().date(),
            "letter": {"id": "sample", "reference": "L-SAMPLE-0001", "category": category, "template": "sample",
                       "template_version": "1.0", "pages": 1, "created_at": dt.datetime.now(dt.UTC)}}


def _record(session: Session, actor: User, action: str, found: MessageTemplate, **texts: Any) -> None:
    """Audit the change with the texts it made or removed; the outbox event names the template and scope only."""
    scope = {"channel": found.channel, "category": found.category, "locale": found.locale,
             "revision": found.revision}
    audit.record(session, actor=actor.username, action=action, object_type="message_template", object_id=found.id,
                 details={**scope, **texts})
    events.emit(session, action, {"message_template_id": found.id, **scope})
