"""Approval of template and block versions: draft -> submitted -> approved | rejected, four eyes, rollback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from correspondence import events as names
from correspondence import rendering
from correspondence.errors import (
    FourEyesError,
    NotApproverError,
    SchemaError,
    UnknownBlockError,
    WorkflowError,
)
from correspondence.models import APPROVED, BLOCK, DRAFT, REJECTED, SUBMITTED, TEMPLATE, Template, TemplateRule
from correspondence.models import TemplateVersion as StateRow
from correspondence.service.rules import rule_dicts, rules_of
from correspondence.service.templates import KIND_WORD, get_template, read_docx, version_row
from repository import audit, events
from repository.access import require_role
from repository.errors import InvalidInputError
from repository.models import DocumentVersion, User
from repository.service.documents import parse_label, writable_document
from repository.types import utcnow

APPROVER = "approver"


@dataclass(frozen=True)
class VersionState:
    """A version of a template with its approval state."""

    version: DocumentVersion
    state: str
    row: StateRow | None
    active: bool


def _row(session: Session, template: Template, version: DocumentVersion, *, lock: bool = False) -> StateRow | None:
    stmt = select(StateRow).where(
        StateRow.template_id == template.id, StateRow.major == version.major, StateRow.minor == version.minor)
    return session.execute(stmt.with_for_update() if lock else stmt).scalar_one_or_none()


def state_row(session: Session, *, template: Template, label: str) -> StateRow | None:
    """The approval row of one version of a template (None for a draft)."""
    major, minor = parse_label(label)
    return session.execute(select(StateRow).where(
        StateRow.template_id == template.id, StateRow.major == major, StateRow.minor == minor)).scalar_one_or_none()


def list_version_states(session: Session, *, actor: User, template_id: str, kind: str = TEMPLATE) -> list[VersionState]:
    """Every version of a template, oldest first, with its approval state (no row yet means draft)."""
    template = get_template(session, actor=actor, template_id=template_id, kind=kind)
    versions = session.execute(select(DocumentVersion).where(DocumentVersion.document_id == template.document_id)
                               .order_by(DocumentVersion.major, DocumentVersion.minor)).scalars()
    rows = {(r.major, r.minor): r for r in session.execute(
        select(StateRow).where(StateRow.template_id == template.id)).scalars()}
    active = (template.active_major, template.active_minor)
    return [VersionState(v, rows[(v.major, v.minor)].state if (v.major, v.minor) in rows else DRAFT,
                         rows.get((v.major, v.minor)), (v.major, v.minor) == active) for v in versions]


def _transition(row: StateRow, state: str, actor: User, comment: str) -> None:
    row.state = state
    row.history = [*row.history, {"state": state, "by": actor.username, "at": utcnow().isoformat(),
                                  "comment": comment}]


def _declared(schema: dict[str, Any]) -> set[str]:
    return set((schema or {}).get("properties", {}) or {})


def _check_against_schema(session: Session, template: Template, info: rendering.TemplateInfo,
                          rules: list[dict[str, str]]) -> None:
    """Every variable the template (and the blocks it uses) reads must be declared in its data schema."""
    used = set(info.variables)
    names = set(info.blocks) | {r["block"] for r in rules}
    for name in sorted(names):
        block = session.execute(select(Template).where(Template.kind == BLOCK, Template.name == name)
                                .order_by(Template.is_default.desc())).scalars().first()
        if block is None:
            raise UnknownBlockError(f"the template uses content block {name!r}, which does not exist", block=name)
        if block.active_major is not None:
            active = version_row(session, block, block.active_label)
            used |= set(rendering.inspect_template(read_docx(session, active)).variables)
    undeclared = sorted(used - _declared(template.data_schema))
    if undeclared:
        raise SchemaError(f"the template uses variables its data schema does not declare: {', '.join(undeclared)}",
                          undeclared=undeclared)


def submit(session: Session, *, actor: User, template_id: str, kind: str = TEMPLATE, version: str | None = None,
           comment: str = "") -> VersionState:
    """Ask for approval of a version (the newest unless given); checks it against the data schema first."""
    template = get_template(session, actor=actor, template_id=template_id, kind=kind, lock=True)
    writable_document(session, actor=actor, document_id=template.document_id,
                      what=f"submit {KIND_WORD[kind]} {template.name}")
    target = version_row(session, template, version)
    row = _row(session, template, target, lock=True)
    if row is not None and row.state != DRAFT:
        hint = "; check in a new version and submit that" if row.state == REJECTED else ""
        raise WorkflowError(f"version {target.label} of {KIND_WORD[kind]} {template.name} is already "
                            f"{row.state}{hint}", state=row.state, version=target.label)
    info = rendering.inspect_template(read_docx(session, target))
    if kind == BLOCK and info.blocks:
        raise WorkflowError("a content block may not include other blocks", blocks=sorted(info.blocks))
    rules = rule_dicts(rules_of(session, template.id)) if kind == TEMPLATE else []
    if kind == TEMPLATE:
        _check_against_schema(session, template, info, rules)
    if row is None:
        row = StateRow(template_id=template.id, major=target.major, minor=target.minor, history=[])
        session.add(row)
    row.submitted_by, row.submitted_at = actor.id, utcnow()
    row.blocks = sorted(set(info.blocks) | {r["block"] for r in rules})
    row.variables, row.rules, row.data_schema = sorted(info.variables), rules, template.data_schema
    _transition(row, SUBMITTED, actor, comment)
    session.flush()
    _record(session, actor, template, target, names.VERSION_SUBMITTED, comment)
    return VersionState(target, SUBMITTED, row, False)


def _decide(session: Session, *, actor: User, template_id: str, kind: str, version: str | None,
            comment: str, verb: str) -> tuple[Template, DocumentVersion, StateRow]:
    template = get_template(session, actor=actor, template_id=template_id, kind=kind, lock=True)
    if APPROVER not in actor.roles:
        raise NotApproverError(f"only a user with the approver role may {verb} a {KIND_WORD[kind]} version",
                               reason="approver role required")
    target = version_row(session, template, version)
    row = _row(session, template, target, lock=True)
    state = row.state if row is not None else DRAFT
    if state != SUBMITTED:
        raise WorkflowError(f"version {target.label} of {KIND_WORD[kind]} {template.name} is {state}, not "
                            f"submitted; only a submitted version can be {verb}d", state=state,
                            version=target.label)
    if target.created_by == actor.id:
        raise FourEyesError(f"you wrote version {target.label} of {KIND_WORD[kind]} {template.name}; a different "
                            f"approver must {verb} it (four eyes)", reason="author cannot approve own version")
    row.decided_by, row.decided_at = actor.id, utcnow()
    return template, target, row


def approve(session: Session, *, actor: User, template_id: str, kind: str = TEMPLATE, version: str | None = None,
            comment: str = "") -> VersionState:
    """Approve a submitted version (four eyes); the newest approved version becomes the active one."""
    template, target, row = _decide(session, actor=actor, template_id=template_id, kind=kind, version=version,
                                    comment=comment, verb="approve")
    _transition(row, APPROVED, actor, comment)
    current = (template.active_major, template.active_minor)
    if template.active_major is None or (target.major, target.minor) > current:
        template.active_major, template.active_minor = target.major, target.minor
    template.updated_at = utcnow()
    _record(session, actor, template, target, names.VERSION_APPROVED, comment,
            used_by=[t.id for t in used_by(session, name=template.name)] if kind == BLOCK else None)
    return VersionState(target, APPROVED, row, template.active_label == target.label)


def reject(session: Session, *, actor: User, template_id: str, kind: str = TEMPLATE, version: str | None = None,
           comment: str = "") -> VersionState:
    """Reject a submitted version with a comment; a rejected version is never used."""
    template, target, row = _decide(session, actor=actor, template_id=template_id, kind=kind, version=version,
                                    comment=comment, verb="reject")
    _transition(row, REJECTED, actor, comment)
    _record(session, actor, template, target, names.VERSION_REJECTED, comment)
    return VersionState(target, REJECTED, row, False)


def rollback(session: Session, *, actor: User, template_id: str, kind: str = TEMPLATE, version: str,
             reason: str) -> Template:
    """Make an earlier approved version the active one again (admins; audited with the reason)."""
    template = get_template(session, actor=actor, template_id=template_id, kind=kind, lock=True)
    require_role(actor, "admin")
    if not (reason or "").strip():
        raise InvalidInputError("a rollback needs a reason", field="reason")
    parse_label(version)
    target = version_row(session, template, version)
    row = _row(session, template, target)
    if row is None or row.state != APPROVED:
        raise WorkflowError(f"version {target.label} of {KIND_WORD[kind]} {template.name} was never approved; "
                            "only approved versions can be made active", version=target.label)
    previous = template.active_label
    template.active_major, template.active_minor = target.major, target.minor
    template.updated_at = utcnow()
    _record(session, actor, template, target, names.ROLLED_BACK, reason, previous=previous)
    return template


def used_by(session: Session, *, name: str) -> list[Template]:
    """Templates that include a content block: in a submitted/approved version or in a targeting rule."""
    ids = {r.template_id for r in session.execute(select(TemplateRule).where(TemplateRule.block == name)).scalars()}
    for row in session.execute(select(StateRow).join(Template, Template.id == StateRow.template_id)
                               .where(Template.kind == TEMPLATE)).scalars():
        if name in (row.blocks or []):
            ids.add(row.template_id)
    if not ids:
        return []
    return list(session.execute(select(Template).where(Template.id.in_(ids))
                                .order_by(Template.name, Template.locale)).scalars())


def _record(session: Session, actor: User, template: Template, target: DocumentVersion, event: str, comment: str,
            **extra: Any) -> None:
    details = {"name": template.name, "version": target.label, "comment": comment,
               **{k: v for k, v in extra.items() if v is not None}}
    audit.record(session, actor=actor.username, action=f"{template.kind}.{event.split('.')[1]}",
                 object_type=template.kind, object_id=template.id, details=details)
    events.emit(session, event, {"template_id": template.id, "kind": template.kind, **details})
