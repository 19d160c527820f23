"""The file plan: hierarchical classes, each with one retention rule, and which document types file into them."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from records import events as names
from records.errors import DuplicateClassError, InvalidRuleError, RecordsNotFoundError
from records.models import ACTIONS, CUTOFFS, EVENT, PERIOD_UNITS, TRIGGERS, RetentionClass, TypeClass
from records.retention import Rule
from records.service.common import note, require_records_manager
from repository.models import DocumentType, User
from repository.types import utcnow

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,49}$")
_EVENT = re.compile(r"^[a-z][a-z0-9_.-]{0,99}$")
RULE_FIELDS = ("trigger", "event_type", "period_value", "period_unit", "cutoff", "action")
EDITABLE = ("title", "description", "parent", "auto_declare", "legal_basis", *RULE_FIELDS)


def rule_of(cls: RetentionClass) -> Rule:
    """The due-date part of a class's rule."""
    return Rule(cls.period_value, cls.period_unit, cls.cutoff)


def get_class(session: Session, *, class_ref: str) -> RetentionClass:
    """A class by id or code; RecordsNotFoundError otherwise."""
    found = session.get(RetentionClass, class_ref) or session.execute(
        select(RetentionClass).where(RetentionClass.code == class_ref)).scalar_one_or_none()
    if found is None:
        raise RecordsNotFoundError(f"file-plan class {class_ref} not found")
    return found


def list_classes(session: Session) -> list[RetentionClass]:
    """Every class of the file plan, by code (a file plan has hundreds of classes, not millions)."""
    return list(session.execute(select(RetentionClass).order_by(RetentionClass.code)).scalars())


def class_of_type(session: Session, document_type_id: str) -> RetentionClass | None:
    """The class new documents of a type are filed in, if the type is mapped."""
    return session.execute(select(RetentionClass).join(TypeClass, TypeClass.class_id == RetentionClass.id)
                           .where(TypeClass.document_type_id == document_type_id)).scalar_one_or_none()


def _check_rule(values: dict[str, Any]) -> None:
    trigger, unit, cutoff, action = (values.get(k) for k in ("trigger", "period_unit", "cutoff", "action"))
    if trigger not in TRIGGERS:
        raise InvalidRuleError(f"trigger must be one of {', '.join(TRIGGERS)}", field="trigger")
    if trigger == EVENT:
        if not _EVENT.match(values.get("event_type") or ""):
            raise InvalidRuleError("a rule triggered by a business event needs event_type, such as "
                                   "'account_closed' (lower case letters, digits, _ . -)", field="event_type")
    elif values.get("event_type"):
        raise InvalidRuleError("event_type is only for rules whose trigger is 'event'", field="event_type")
    period = values.get("period_value")
    if not isinstance(period, int) or isinstance(period, bool) or not 0 <= period <= 1000:
        raise InvalidRuleError("period_value must be a whole number from 0 to 1000", field="period_value")
    if unit not in PERIOD_UNITS:
        raise InvalidRuleError(f"period_unit must be one of {', '.join(PERIOD_UNITS)}", field="period_unit")
    if cutoff is not None and cutoff not in CUTOFFS:
        raise InvalidRuleError(f"cutoff must be null or one of {', '.join(CUTOFFS)}", field="cutoff")
    if action not in ACTIONS:
        raise InvalidRuleError(f"action must be one of {', '.join(ACTIONS)}", field="action")


def _check_text(values: dict[str, Any]) -> None:
    title = (values.get("title") or "").strip()
    if not title or len(title) > 300:
        raise InvalidRuleError("title must be 1-300 characters", field="title")
    if len(values.get("description") or "") > 10_000:
        raise InvalidRuleError("description must be at most 10,000 characters", field="description")
    if len(values.get("legal_basis") or "") > 500:
        raise InvalidRuleError("legal_basis must be at most 500 characters", field="legal_basis")


def _parent_id(session: Session, parent: str | None, own_id: str | None = None) -> str | None:
    if parent is None:
        return None
    found = get_class(session, class_ref=parent)
    ancestor: RetentionClass | None = found
    while ancestor is not None:  # a class may not become its own ancestor
        if ancestor.id == own_id:
            raise InvalidRuleError("a class cannot be filed under itself or one of its subclasses", field="parent")
        ancestor = session.get(RetentionClass, ancestor.parent_id) if ancestor.parent_id else None
    return found.id


def snapshot(cls: RetentionClass) -> dict[str, Any]:
    """A class's editable values, for audit trails of changes."""
    return {"code": cls.code, "title": cls.title, "parent_id": cls.parent_id, "auto_declare": cls.auto_declare,
            "legal_basis": cls.legal_basis, **{f: getattr(cls, f) for f in RULE_FIELDS}}


def create_class(session: Session, *, actor: User, code: str, title: str, trigger: str, period_value: int,
                 period_unit: str, action: str, description: str = "", parent: str | None = None,
                 event_type: str | None = None, cutoff: str | None = None, auto_declare: bool = False,
                 legal_basis: str | None = None) -> RetentionClass:
    """Add a class with its retention rule to the file plan (records managers)."""
    require_records_manager(actor)
    if not _CODE.match(code or ""):
        raise InvalidRuleError("code must be 1-50 characters: letters, digits and . _ / - (such as 'FIN-01.2')",
                               field="code")
    values = {"title": title, "description": description, "trigger": trigger, "event_type": event_type,
              "period_value": period_value, "period_unit": period_unit, "cutoff": cutoff, "action": action,
              "legal_basis": legal_basis}
    _check_rule(values)
    _check_text(values)
    if session.execute(select(RetentionClass.id).where(RetentionClass.code == code)).first():
        raise DuplicateClassError(f"the file plan already has a class {code!r}")
    cls = RetentionClass(code=code, parent_id=_parent_id(session, parent), title=title.strip(),
                         description=description or "", trigger=trigger, event_type=event_type,
                         period_value=period_value, period_unit=period_unit, cutoff=cutoff, action=action,
                         auto_declare=bool(auto_declare), legal_basis=legal_basis or None, rule_revision=1,
                         created_by=actor.username)
    session.add(cls)
    session.flush()
    note(session, actor=actor.username, action=names.CLASS_CREATED, object_type="records_class", object_id=cls.id,
         details=snapshot(cls), event=names.CLASS_CREATED, payload={"class_id": cls.id, "code": code})
    return cls


def update_class(session: Session, *, actor: User, class_id: str, reason: str, **changes: Any) -> RetentionClass:
    """Change a class's description or rule (audited with old and new values and the reason). A rule change
    raises the rule revision and recomputes the due dates of every document in the class."""
    from records.service.classification import recompute_class  # classification builds on the file plan

    require_records_manager(actor)
    if not (reason or "").strip():
        raise InvalidRuleError("changing a file-plan class needs a reason", field="reason")
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise InvalidRuleError(f"cannot change {', '.join(unknown)}; editable: {', '.join(EDITABLE)}",
                               field=unknown[0])
    if not changes:
        raise InvalidRuleError(f"nothing to change; give any of {', '.join(EDITABLE)}")
    cls = get_class(session, class_ref=class_id)
    before = snapshot(cls)
    values = {**before, "description": cls.description, **changes}
    if values.get("trigger") != EVENT and "trigger" in changes and "event_type" not in changes:
        values["event_type"] = None
    _check_rule(values)
    _check_text(values)
    if "parent" in changes:
        values["parent_id"] = _parent_id(session, changes["parent"], own_id=cls.id)
    rule_changed = any(values[f] != before[f] for f in RULE_FIELDS)
    for field in ("title", "description", "auto_declare", "legal_basis", "parent_id", *RULE_FIELDS):
        setattr(cls, field, values[field].strip() if field == "title" else values[field])
    cls.legal_basis = cls.legal_basis or None
    cls.updated_at = utcnow()
    if rule_changed:
        cls.rule_revision += 1
    session.flush()
    recomputed = recompute_class(session, cls=cls, trigger_changed=values["trigger"] != before["trigger"]
                                 or values["event_type"] != before["event_type"]) if rule_changed else 0
    note(session, actor=actor.username, action=names.CLASS_UPDATED, object_type="records_class", object_id=cls.id,
         details={"old": before, "new": snapshot(cls), "reason": reason.strip(), "recomputed": recomputed},
         event=names.CLASS_UPDATED, payload={"class_id": cls.id, "rule_revision": cls.rule_revision,
                                             "recomputed": recomputed})
    return cls


def map_document_types(session: Session, *, actor: User, class_id: str, document_types: list[str]) -> list[str]:
    """File new documents of these types in the class (a type files in one class; remapping moves it).
    Documents already classified keep their class (reclassify them one by one, with a reason)."""
    require_records_manager(actor)
    cls = get_class(session, class_ref=class_id)
    if not isinstance(document_types, list) or not all(isinstance(t, str) for t in document_types):
        raise InvalidRuleError("document_types must be a list of document type names", field="document_types")
    names_ = sorted(set(document_types))
    found = dict(session.execute(select(DocumentType.name, DocumentType.id)
                                 .where(DocumentType.name.in_(names_))).all())
    missing = [n for n in names_ if n not in found]
    if missing:
        raise InvalidRuleError(f"no such document type: {', '.join(missing)}", field="document_types")
    previous = list(session.execute(select(DocumentType.name).join(TypeClass, TypeClass.document_type_id ==
                                                                   DocumentType.id)
                                    .where(TypeClass.class_id == cls.id)).scalars())
    session.execute(delete(TypeClass).where(TypeClass.class_id == cls.id))
    if found:
        session.execute(delete(TypeClass).where(TypeClass.document_type_id.in_(list(found.values()))))
        session.execute(insert(TypeClass), [{"document_type_id": i, "class_id": cls.id} for i in found.values()])
    note(session, actor=actor.username, action=names.TYPES_MAPPED, object_type="records_class", object_id=cls.id,
         details={"old": sorted(previous), "new": names_}, event=names.TYPES_MAPPED,
         payload={"class_id": cls.id, "document_types": names_})
    return names_


def types_of(session: Session, class_id: str) -> list[str]:
    """The names of the document types filed in a class."""
    return list(session.execute(select(DocumentType.name).join(TypeClass, TypeClass.document_type_id ==
                                                               DocumentType.id)
                                .where(TypeClass.class_id == class_id).order_by(DocumentType.name)).scalars())


