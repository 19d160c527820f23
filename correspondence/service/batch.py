"""Rendering a batch: the template versions are pinned when the batch is created, and every row of the batch
renders with them, however long the batch runs and whatever is approved meanwhile.

Decisions:
- A template may have one variant per locale; a batch pins the active approved version of every variant
  (`pin_versions`), and each row renders with the variant its customer's locale picks, as a single letter would.
- `BatchRenderer` holds the compiled templates, so a runner loads them once and renders chunk after chunk
  without touching the database; the data of each row is checked against the schema approved with its version.
- Templates whose headers or footers contain Jinja cannot share one batch document (`render_many` refuses
  them): `single_only` tells the runner to render and convert those letters one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from correspondence import rendering
from correspondence.errors import WorkflowError
from correspondence.models import TEMPLATE, Template
from correspondence.service.render import build_context, compiled_for, validate_data
from correspondence.service.templates import pick_variant, resolve, version_row
from correspondence.service.workflow import state_row
from repository.models import User


@dataclass(frozen=True)
class Variant:
    """One pinned template variant: which template and version, its approved schema and compiled form."""

    template_id: str
    name: str
    locale: str
    is_default: bool
    created_at: Any
    category: str | None
    version: str
    schema: dict[str, Any]
    compiled: rendering.CompiledTemplate

    @property
    def single_only(self) -> bool:
        """True when letters of this variant cannot share one batch document (Jinja in headers or footers)."""
        return bool(self.compiled.parts)


def pin_versions(session: Session, *, actor: User, template: str) -> dict[str, str]:
    """The active approved version of every locale variant of the named (or identified) template:
    {template id: version label}; WorkflowError when none is approved."""
    chosen = resolve(session, actor=actor, ref=template)
    variants = session.execute(select(Template).where(
        Template.kind == TEMPLATE, Template.name == chosen.name, Template.active_major.is_not(None))).scalars()
    pinned = {t.id: t.active_label for t in variants}
    if not pinned:
        raise WorkflowError(f"template {chosen.name!r} has no approved version; a batch can only use an approved "
                            "template", template=chosen.name)
    return pinned


def default_variant(session: Session, *, pinned: Mapping[str, str]) -> Template:
    """The pinned variant a customer without a matching locale gets (the default one, else the oldest)."""
    return pick_variant([session.get(Template, template_id) for template_id in pinned], None)


def approved_schema(session: Session, *, actor: User, template: str) -> dict[str, Any]:
    """The data schema approved with the active version of the template's default variant (to type CSV values)."""
    pinned = pin_versions(session, actor=actor, template=template)
    main = default_variant(session, pinned=pinned)
    row = state_row(session, template=main, label=pinned[main.id])
    return row.data_schema if row is not None else {}


class BatchRenderer:
    """Renders rows of one batch with its pinned versions; no database access after construction."""

    def __init__(self, variants: list[Variant]) -> None:
        self.variants = variants

    def variant_for(self, customer: Mapping[str, Any]) -> Variant:
        """The variant the customer's locale picks (locale fallback as for a single letter)."""
        return pick_variant(self.variants, customer.get("locale"))  # type: ignore[arg-type, return-value]

    @staticmethod
    def check(variant: Variant, data: Any) -> None:
        """DataValidationError unless the row's data matches the variant's approved schema."""
        validate_data(schema=variant.schema, data=data)

    @staticmethod
    def context(*, customer: Mapping[str, Any], data: dict[str, Any], letter: dict[str, Any]) -> dict[str, Any]:
        """The render context of one row."""
        return build_context(data=data, customer=dict(customer), letter=letter)

    @staticmethod
    def render_many(variant: Variant, contexts: Iterable[Mapping[str, Any]], out: BinaryIO) -> rendering.RenderedBatch:
        """Many rows of one variant into one DOCX written to `out`."""
        return rendering.render_many(variant.compiled, contexts, out=out)

    @staticmethod
    def render_one(variant: Variant, context: Mapping[str, Any]) -> bytes:
        """One row as its own DOCX."""
        return rendering.render_one(variant.compiled, context, locale=context["customer"].get("locale") or "en-GB")


def batch_renderer(session: Session, *, pinned: Mapping[str, str]) -> BatchRenderer:
    """A renderer for the pinned versions (template id -> label), with their approved rules and schemas."""
    variants = []
    for template_id, label in pinned.items():
        template = session.get(Template, template_id)
        if template is None:
            raise WorkflowError(f"template {template_id} of this batch no longer exists", template=template_id)
        version = version_row(session, template, label)
        approval = state_row(session, template=template, label=label)
        if approval is None:
            raise WorkflowError(f"version {label} of template {template.name!r} is not approved",
                                template=template.name)
        compiled = compiled_for(session, template=template, version=version, production=True, rules=approval.rules)
        variants.append(Variant(template_id=template.id, name=template.name, locale=template.locale,
                                is_default=template.is_default, created_at=template.created_at,
                                category=template.category, version=label, schema=approval.data_schema,
                                compiled=compiled))
    return BatchRenderer(variants)
