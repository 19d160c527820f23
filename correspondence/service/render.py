"""Rendering letters and previews: pick the version, validate the data, build the context, reuse compiled
templates. The DOCX work itself is in correspondence.rendering."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from referencing.exceptions import Unresolvable
from sqlalchemy import select
from sqlalchemy.orm import Session

from correspondence import rendering
from correspondence.errors import DataValidationError, SchemaError, UnknownBlockError, WorkflowError
from correspondence.models import BLOCK, TEMPLATE, Template
from correspondence.models import TemplateVersion as StateRow
from correspondence.service.rules import as_engine_rules, rule_dicts, rules_of
from correspondence.service.templates import KIND_WORD, get_template, pick_variant, read_docx, resolve, version_row
from correspondence.service.workflow import state_row
from repository.access import require_role
from repository.errors import InvalidInputError
from repository.models import Customer, DocumentVersion, User
from repository.types import utcnow

CACHE_BYTES = 256 * 1024 * 1024
PREVIEW_ROLES = ("author", "approver")


class _LRU:
    """A thread-safe LRU bounded by the (estimated) bytes of what it holds; the values are immutable."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.used, self.lock = max_bytes, 0, threading.Lock()
        self.items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key][0]
        return None

    def put(self, key: Hashable, value: Any, size: int) -> None:
        with self.lock:
            if key in self.items:
                self.used -= self.items.pop(key)[1]
            self.items[key] = (value, size)
            self.used += size
            while self.used > self.max_bytes and len(self.items) > 1:
                self.used -= self.items.popitem(last=False)[1][1]


# A compiled template keeps its parts unpacked: count several times its DOCX size.
_UNPACKED_FACTOR = 4
_compiled = _LRU(CACHE_BYTES)
_facts = _LRU(CACHE_BYTES // 16)


@dataclass(frozen=True)
class RenderedLetter:
    """A rendered letter and what produced it."""

    docx: bytes
    template: Template
    version: str
    data_sha256: str


def data_digest(data: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the letter data (sorted keys, no spaces)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def template_facts(session: Session, version: DocumentVersion) -> rendering.TemplateInfo:
    """What a template version uses (variables, blocks, slots), computed once per content."""
    facts = _facts.get(version.sha256)
    if facts is None:
        facts = rendering.inspect_template(read_docx(session, version))
        _facts.put(version.sha256, facts, 1024 + 64 * (len(facts.variables) + len(facts.blocks)))
    return facts


def _block_version(session: Session, name: str, locale: str, production: bool) -> tuple[Template, DocumentVersion]:
    variants = list(session.execute(select(Template).where(Template.kind == BLOCK, Template.name == name)).scalars())
    if not variants:
        raise UnknownBlockError(f"the template uses content block {name!r}, which does not exist", block=name)
    approved = [v for v in variants if v.active_major is not None]
    if production and not approved:
        raise WorkflowError(f"content block {name!r} has no approved version yet; approve one first", block=name)
    block = pick_variant(approved if production else variants, locale)
    return block, version_row(session, block, block.active_label)


def compiled_for(session: Session, *, template: Template, version: DocumentVersion, production: bool,
                 rules: list[dict[str, str]] | None = None) -> rendering.CompiledTemplate:
    """The compiled template for a version, with its blocks (approved ones in production) and targeting rules
    (the given ones, else the template's current table); cached by the content of everything that goes in."""
    if rules is None:
        rules = rule_dicts(rules_of(session, template.id)) if template.kind == TEMPLATE else []
    names = set(template_facts(session, version).blocks) | {r["block"] for r in rules}
    blocks = {name: _block_version(session, name, template.locale, production) for name in sorted(names)}
    key = (version.sha256, tuple((n, v.sha256) for n, (_b, v) in blocks.items()),
           tuple((r["slot"], r["condition"], r["block"]) for r in rules))
    found = _compiled.get(key)
    if found is None:
        sources = {n: rendering.BlockSource(name=n, docx=read_docx(session, v).getvalue())
                   for n, (_b, v) in blocks.items()}
        found = rendering.compile_template(read_docx(session, version), blocks=sources,
                                           rules=as_engine_rules(rules))
        size = version.size + sum(v.size for _b, v in blocks.values())
        _compiled.put(key, found, size * _UNPACKED_FACTOR)
    return found


@functools.lru_cache(maxsize=64)
def _validator(schema: str) -> Draft202012Validator:
    """A validator per schema, built once: building one costs more than checking a letter's data."""
    return Draft202012Validator(json.loads(schema))


def validate_data(*, schema: dict[str, Any], data: Any) -> dict[str, Any]:
    """The data if it matches the template's schema; DataValidationError listing every problem otherwise."""
    if not isinstance(data, dict):
        raise DataValidationError("letter data must be a JSON object", problems=[{"path": "", "message":
                                                                                  "not an object"}])
    reserved = sorted(set(data) & set(rendering.RESERVED))
    if reserved:
        raise DataValidationError(f"letter data may not use the reserved names {', '.join(reserved)}",
                                  problems=[{"path": n, "message": "reserved name"} for n in reserved])
    validator = _validator(json.dumps(schema or {"type": "object"}, sort_keys=True))
    try:
        errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    except Unresolvable as exc:  # schemas are checked when stored; this guards ones stored before that check
        raise SchemaError(f"the template's data schema refers to {exc.ref!r}, which cannot be resolved") from exc
    problems = [{"path": "/".join(str(p) for p in e.absolute_path) or "(top level)", "message": e.message}
                for e in errors]
    if problems:
        listing = "; ".join(f"{p['path']}: {p['message']}" for p in problems[:20])
        raise DataValidationError(f"the letter data does not match the template's schema: {listing}",
                                  problems=problems)
    return data


def customer_context(customer: Customer | None) -> dict[str, Any]:
    """The `customer` a template sees: name, salutation, postal address, email, locale, segment."""
    if customer is None:
        return dict(SAMPLE_CUSTOMER)
    value = lambda name, default="": getattr(customer, name, default) or default  # noqa: E731
    return {
        "id": customer.id, "reference": customer.external_ref, "name": customer.name, "title": value("title"),
        "salutation": value("salutation") or f"Dear {customer.name}",
        "address": {"lines": list(value("address_lines", [])), "city": value("city"), "region": value("region"),
                    "postcode": value("postcode"), "country": value("country")},
        "email": value("email"), "locale": value("locale", "en-GB"), "segment": dict(value("segment", {})),
    }


SAMPLE_CUSTOMER: dict[str, Any] = {
    "id": "sample", "reference": "SAMPLE-0001", "name": "Alex Sample", "title": "", "salutation": "Dear Alex Sample",
    "address": {"lines": ["1 Sample Street"], "city": "Sampletown", "region": "", "postcode": "SA1 1AA",
                "country": "GB"},
    "email": "alex.sample@example.com", "locale": "en-GB", "segment": {},
}


def build_context(*, data: dict[str, Any], customer: dict[str, Any], letter: dict[str, Any] | None = None,
                  today: dt.date | None = None) -> dict[str, Any]:
    """The render context: the data at the top level plus `customer`, `letter` and `today`."""
    today = today or utcnow().date()
    letter = {"id": None, "reference": None, "date": today, **(letter or {})}
    return rendering.make_context(data, customer=customer, letter=letter, today=today)


def _production(session: Session, actor: User, ref: str, locale: str) -> tuple[Template, DocumentVersion, StateRow]:
    """The approved variant of the named (or identified) template for the locale, drafts of other variants not
    counting; its active version; and the approval row holding the rules and schema approved with it."""
    chosen = resolve(session, actor=actor, ref=ref)
    variants = list(session.execute(select(Template).where(
        Template.kind == TEMPLATE, Template.name == chosen.name, Template.active_major.is_not(None))).scalars())
    if not variants:
        raise WorkflowError(f"template {chosen.name!r} has no approved version; a letter can only use an approved "
                            "template", template=chosen.name)
    template = pick_variant(variants, locale)
    row = state_row(session, template=template, label=template.active_label)
    return template, version_row(session, template, template.active_label), row


def render_letter(
    session: Session,
    *,
    actor: User,
    template: str,
    customer_id: str,
    data: dict[str, Any],
    letter: dict[str, Any] | None = None,
) -> RenderedLetter:
    """Render one production letter: the active approved version of the template variant for the customer's
    locale, data checked against its schema."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise InvalidInputError(f"customer {customer_id} does not exist", field="customer_id")
    context_customer = customer_context(customer)
    chosen, version, approval = _production(session, actor, template, context_customer["locale"])
    validate_data(schema=approval.data_schema, data=data)
    compiled = compiled_for(session, template=chosen, version=version, production=True, rules=approval.rules)
    context = build_context(data=data, customer=context_customer, letter=letter)
    docx = rendering.render_one(compiled, context, locale=context_customer["locale"])
    return RenderedLetter(docx=docx, template=chosen, version=version.label, data_sha256=data_digest(data))


def preview(
    session: Session,
    *,
    actor: User,
    template_id: str,
    kind: str = TEMPLATE,
    version: str | None = None,
    data: dict[str, Any] | None = None,
    customer_id: str | None = None,
) -> tuple[bytes, str]:
    """Render any version (approved or not) with sample data (the given, or the template's stored sample) for
    authors and approvers; returns the DOCX and the version label."""
    template = get_template(session, actor=actor, template_id=template_id, kind=kind)
    require_role(actor, *PREVIEW_ROLES)
    target = version_row(session, template, version)
    data = template.sample_data if data is None else data
    if kind == TEMPLATE:
        validate_data(schema=template.data_schema, data=data)
    elif not isinstance(data, dict):
        raise DataValidationError("sample data must be a JSON object", problems=[])
    customer = None
    if customer_id:
        customer = session.get(Customer, customer_id)
        if customer is None:
            raise InvalidInputError(f"customer {customer_id} does not exist", field="customer_id")
    context_customer = customer_context(customer)
    compiled = compiled_for(session, template=template, version=target, production=False)
    context = build_context(data=dict(data), customer=context_customer,
                            letter={"id": "preview", "reference": f"PREVIEW-{KIND_WORD[kind]}"})
    return rendering.render_one(compiled, context, locale=context_customer["locale"]), target.label
