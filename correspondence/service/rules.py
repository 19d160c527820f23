"""Targeting rules: per template, an ordered table of (slot, condition, block); the first rule of a slot whose
condition holds for the letter puts its block there. Authors change the table without editing the template."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from correspondence import events as names
from correspondence import rendering
from correspondence.errors import UnknownBlockError
from correspondence.models import BLOCK, TEMPLATE, Template, TemplateRule
from correspondence.service.templates import get_template
from repository import audit, events
from repository.errors import InvalidInputError
from repository.models import User
from repository.service.documents import writable_document

_SLOT = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")
MAX_RULES = 200


def get_rules(session: Session, *, actor: User, template_id: str) -> list[TemplateRule]:
    """A template's targeting table in evaluation order."""
    get_template(session, actor=actor, template_id=template_id, kind=TEMPLATE)
    return rules_of(session, template_id)


def rules_of(session: Session, template_id: str) -> list[TemplateRule]:
    """The rules of a template, slot by slot in evaluation order (no access check)."""
    return list(session.execute(select(TemplateRule).where(TemplateRule.template_id == template_id)
                                .order_by(TemplateRule.slot, TemplateRule.position)).scalars())


def rule_dicts(rules: Sequence[TemplateRule]) -> list[dict[str, str]]:
    """Rules as plain values (what a submitted version keeps as its snapshot)."""
    return [{"slot": r.slot, "condition": r.condition, "block": r.block} for r in rules]


def as_engine_rules(rules: Sequence[dict[str, str]]) -> list[rendering.Rule]:
    """Rules (as plain values) in the rendering engine's shape."""
    return [rendering.Rule(slot=r["slot"], condition=r["condition"], block=r["block"]) for r in rules]


def _check(index: int, raw: Any, session: Session) -> tuple[str, str, str]:
    where = f"rules[{index}]"
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{where} must be an object with slot, condition and block", field=where)
    slot, condition, block = (str(raw.get(k) or "").strip() for k in ("slot", "condition", "block"))
    if not _SLOT.match(slot):
        raise InvalidInputError(f"{where}.slot must be a lower-case name like 'promotion'", field=f"{where}.slot")
    if not condition or len(condition) > 2000:
        raise InvalidInputError(f"{where}.condition must be 1-2000 characters", field=f"{where}.condition")
    try:
        rendering.check_condition(condition)
    except InvalidInputError as exc:
        raise type(exc)(f"{where}.condition: {exc.detail}", field=f"{where}.condition", **exc.extra) from exc
    if session.execute(select(Template.id).where(Template.kind == BLOCK, Template.name == block)).first() is None:
        raise UnknownBlockError(f"{where}.block: there is no content block named {block!r}", block=block,
                                field=f"{where}.block")
    return slot, condition, block


def set_rules(session: Session, *, actor: User, template_id: str, rules: list[Any]) -> list[TemplateRule]:
    """Replace a template's targeting table (authors and admins); every row is checked before anything changes."""
    template = get_template(session, actor=actor, template_id=template_id, kind=TEMPLATE, lock=True)
    writable_document(session, actor=actor, document_id=template.document_id,
                      what=f"change the targeting rules of template {template.name}")
    if not isinstance(rules, list) or len(rules) > MAX_RULES:
        raise InvalidInputError(f"rules must be a list of at most {MAX_RULES} rows", field="rules")
    checked = [_check(i, raw, session) for i, raw in enumerate(rules)]
    old = rule_dicts(rules_of(session, template.id))
    session.execute(delete(TemplateRule).where(TemplateRule.template_id == template.id))
    positions: dict[str, int] = {}
    for slot, condition, block in checked:
        positions[slot] = positions.get(slot, 0) + 1
        session.add(TemplateRule(template_id=template.id, slot=slot, position=positions[slot], condition=condition,
                                 block=block, created_by=actor.id))
    session.flush()
    new = [{"slot": s, "condition": c, "block": b} for s, c, b in checked]
    audit.record(session, actor=actor.username, action="template.rules_changed", object_type=TEMPLATE,
                 object_id=template.id, details={"name": template.name, "old": old, "new": new})
    events.emit(session, names.RULES_CHANGED, {"template_id": template.id, "rules": len(new)})
    return rules_of(session, template.id)
