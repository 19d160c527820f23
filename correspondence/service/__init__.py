"""Correspondence authoring: the functions other code calls (keyword-only, session first, never committing)."""

from correspondence.service.batch import (
    BatchRenderer,
    Variant,
    approved_schema,
    batch_renderer,
    default_variant,
    pin_versions,
)
from correspondence.service.render import (
    RenderedLetter,
    build_context,
    compiled_for,
    customer_context,
    data_digest,
    preview,
    render_letter,
    validate_data,
)
from correspondence.service.rules import get_rules, set_rules
from correspondence.service.templates import (
    create_template,
    get_template,
    get_template_by_name,
    list_templates,
    normalise_locale,
    resolve,
    update_template,
)
from correspondence.service.workflow import (
    VersionState,
    approve,
    list_version_states,
    reject,
    rollback,
    submit,
    used_by,
)

__all__ = [
    "BatchRenderer",
    "RenderedLetter",
    "Variant",
    "VersionState",
    "approve",
    "approved_schema",
    "batch_renderer",
    "build_context",
    "compiled_for",
    "create_template",
    "customer_context",
    "data_digest",
    "default_variant",
    "get_rules",
    "get_template",
    "get_template_by_name",
    "list_templates",
    "list_version_states",
    "normalise_locale",
    "pin_versions",
    "preview",
    "reject",
    "render_letter",
    "resolve",
    "rollback",
    "set_rules",
    "submit",
    "update_template",
    "used_by",
    "validate_data",
]
