"""Templates and content blocks as registered objects: create, find (with locale fallback), list, update."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError as JSONSchemaError
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012
from sqlalchemy import select
from sqlalchemy.orm import Session

from correspondence import events as names
from correspondence import rendering
from correspondence.errors import SchemaError, TemplateNotFoundError
from correspondence.models import BLOCK, TEMPLATE, Template
from repository import audit, events, service
from repository.access import can_read, deny_read
from repository.content import StagedContent
from repository.errors import DuplicateError, InvalidInputError, PreconditionFailedError
from repository.locales import normalise_locale
from repository.models import Document, DocumentType, DocumentVersion, User
from repository.service.documents import check_metadata, parse_label, writable_document
from repository.types import utcnow

DOCUMENT_TYPE = {TEMPLATE: "template", BLOCK: "content-block"}
TEMPLATE_DOCUMENT_TYPE = DOCUMENT_TYPE[TEMPLATE]  # its roles also govern message templates (output)
KIND_WORD = {TEMPLATE: "template", BLOCK: "content block"}
CATEGORIES = ("statement", "notice", "complaint-response", "marketing", "regulatory", "service", "collections",
              "welcome", "other")
_SCHEMA_URI = "urn:postroom:template-schema"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
MAX_TEMPLATE_BYTES = rendering.MAX_TEMPLATE_BYTES  # one limit for storing and compiling


def check_schema(schema: Any) -> dict[str, Any]:
    """A template's data schema must be a JSON Schema object (draft 2020-12) describing an object."""
    if not isinstance(schema, dict):
        raise SchemaError("the data schema must be a JSON object (a JSON Schema)", field="schema")
    check_metadata(schema)  # size, NaN, NUL: the same rules as any stored JSON
    try:
        Draft202012Validator.check_schema(schema)
    except JSONSchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(top level)"
        raise SchemaError(f"the data schema is not valid JSON Schema at {where}: {exc.message}",
                          field="schema") from exc
    if schema and schema.get("type", "object") != "object":
        raise SchemaError("the data schema must describe an object (\"type\": \"object\")", field="schema")
    _check_refs(schema)
    return schema


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _check_refs(schema: dict[str, Any]) -> None:
    """Every $ref must point inside the schema itself: nothing is fetched, and nothing may dangle."""
    resolver = Registry().with_resource(_SCHEMA_URI, DRAFT202012.create_resource(schema)).resolver(_SCHEMA_URI)
    for ref in _refs(schema):
        try:
            resolver.lookup(ref)
        except Unresolvable as exc:
            raise SchemaError(f"the data schema refers to {ref!r}, which is not a part of the schema itself "
                              "(references must be local, like #/$defs/address)", field="schema") from exc


def _check_name(name: str, kind: str) -> str:
    name = (name or "").strip()
    if not _NAME.match(name):
        raise InvalidInputError(f"a {KIND_WORD[kind]} name is 1-100 lower-case letters, digits, '-' or '_', "
                                f"starting with a letter or digit; got {name!r}", field="name")
    return name


def _check_category(category: str, kind: str) -> str:
    category = (category or "").strip()
    if kind == BLOCK:
        return category
    if category not in CATEGORIES:
        raise InvalidInputError(f"category must be one of {', '.join(CATEGORIES)}", field="category")
    return category


def create_template(
    session: Session,
    *,
    actor: User,
    kind: str,
    name: str,
    locale: str,
    content: StagedContent,
    category: str = "",
    schema: dict[str, Any] | None = None,
    sample_data: dict[str, Any] | None = None,
    description: str = "",
    is_default: bool | None = None,
) -> Template:
    """Register a template (or content block) with its first version (1.0, a draft) as a repository document.
    The first variant of a name is its default locale unless another is marked default later."""
    name, locale = _check_name(name, kind), normalise_locale(locale)
    category = _check_category(category, kind)
    schema = check_schema(schema if schema is not None else {"type": "object"})
    sample_data = check_metadata(sample_data if sample_data is not None else {})
    siblings = list(session.execute(select(Template).where(Template.kind == kind, Template.name == name)).scalars())
    if any(t.locale == locale for t in siblings):
        raise DuplicateError(f"a {KIND_WORD[kind]} named {name!r} already exists for locale {locale}",
                             field="name")
    document = service.create_document(
        session, actor=actor, title=f"{KIND_WORD[kind]} {name} ({locale})", document_type=DOCUMENT_TYPE[kind],
        content=content, metadata={"correspondence": {"kind": kind, "name": name, "locale": locale}},
    )
    make_default = not siblings if is_default is None else is_default
    if make_default:
        for sibling in siblings:
            sibling.is_default = False
    template = Template(kind=kind, name=name, locale=locale, is_default=make_default, category=category,
                        description=(description or "")[:2000], document_id=document.id, data_schema=schema,
                        sample_data=sample_data, created_by=actor.id)
    session.add(template)
    session.flush()
    audit.record(session, actor=actor.username, action=f"{kind}.created", object_type=kind, object_id=template.id,
                 details={"name": name, "locale": locale, "document_id": document.id, "category": category})
    events.emit(session, names.TEMPLATE_CREATED, {"template_id": template.id, "kind": kind, "name": name,
                                            "document_id": document.id})
    return template


def _visible(session: Session, actor: User, template: Template) -> bool:
    return can_read(actor, _document_type(session, template.kind))


def _document_type(session: Session, kind: str) -> DocumentType:
    return service.get_type(session, name=DOCUMENT_TYPE[kind])


def get_template(session: Session, *, actor: User, template_id: str, kind: str = TEMPLATE,
                 lock: bool = False) -> Template:
    """The template (or block) with this id if the actor may read it; TemplateNotFoundError otherwise. With
    `lock`, the row stays locked until commit, so changes to it are serialised (PostgreSQL)."""
    template = session.get(Template, template_id, with_for_update=lock or None)
    if template is None or template.kind != kind:
        raise TemplateNotFoundError(f"{KIND_WORD[kind]} {template_id} not found")
    if not _visible(session, actor, template):
        raise deny_read(actor, kind, template_id)
    return template


def get_template_by_name(
    session: Session, *, actor: User, name: str, kind: str = TEMPLATE, locale: str | None = None
) -> Template:
    """The variant of a named template for a locale: the exact locale, else the same language, else the default
    variant. TemplateNotFoundError when the name does not exist (or is not visible)."""
    variants = list(session.execute(select(Template).where(Template.kind == kind, Template.name == name)).scalars())
    if not variants or not _visible(session, actor, variants[0]):
        raise TemplateNotFoundError(f"there is no {KIND_WORD[kind]} named {name!r}", name=name)
    return pick_variant(variants, locale)


def pick_variant(variants: list[Template], locale: str | None) -> Template:
    """Locale fallback: exact tag, then the language alone, then the default variant (or the oldest)."""
    if locale:
        try:
            wanted = normalise_locale(locale)
        except InvalidInputError:
            wanted = ""
        for match in (lambda t: t.locale == wanted, lambda t: t.locale.split("-")[0] == wanted.split("-")[0]):
            found = [t for t in variants if match(t)]
            if found:
                return sorted(found, key=lambda t: (not t.is_default, t.created_at))[0]
    return sorted(variants, key=lambda t: (not t.is_default, t.created_at))[0]


def resolve(session: Session, *, actor: User, ref: str, kind: str = TEMPLATE, locale: str | None = None) -> Template:
    """A template by id, or by name with locale fallback."""
    template = session.get(Template, ref)
    if template is not None and template.kind == kind:
        if not _visible(session, actor, template):
            raise deny_read(actor, kind, ref)
        if locale is None:
            return template
        return get_template_by_name(session, actor=actor, name=template.name, kind=kind, locale=locale)
    return get_template_by_name(session, actor=actor, name=ref, kind=kind, locale=locale)


def list_templates(
    session: Session, *, actor: User, kind: str = TEMPLATE, category: str | None = None, name: str | None = None,
    after: str | None = None, limit: int = 200,
) -> list[Template]:
    """Templates (or blocks) the actor may read, by name and locale: every variant of at most `limit` names,
    starting after the name `after` (the last name of the previous page)."""
    if not can_read(actor, _document_type(session, kind)):
        return []
    names = select(Template.name).where(Template.kind == kind).distinct().order_by(Template.name)
    if category:
        names = names.where(Template.category == category)
    if name:
        names = names.where(Template.name == name)
    if after:
        names = names.where(Template.name > after)
    page = list(session.execute(names.limit(min(max(limit, 1), 500))).scalars())
    stmt = (select(Template).where(Template.kind == kind, Template.name.in_(page))
            .order_by(Template.name, Template.locale))
    if category:
        stmt = stmt.where(Template.category == category)
    return list(session.execute(stmt).scalars())


def update_template(
    session: Session, *, actor: User, template_id: str, kind: str, changes: dict[str, Any],
    expected_revision: int | None = None,
) -> Template:
    """Change a template's category, description, schema, sample data or default flag (authors and admins)."""
    template = get_template(session, actor=actor, template_id=template_id, kind=kind)
    writable_document(session, actor=actor, document_id=template.document_id,
                                        what=f"change {KIND_WORD[kind]} {template.name}")
    if expected_revision is not None and expected_revision != template.revision:
        raise PreconditionFailedError(f"{KIND_WORD[kind]} {template_id} has changed (revision "
                                      f"{template.revision}); reload it and try again")
    allowed = {"category", "description", "schema", "sample_data", "is_default"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise InvalidInputError(f"cannot change {', '.join(unknown)}; changeable: {', '.join(sorted(allowed))}")
    if "category" in changes:
        template.category = _check_category(changes["category"], kind)
    if "description" in changes:
        template.description = (changes["description"] or "")[:2000]
    if "schema" in changes:
        template.data_schema = check_schema(changes["schema"])
    if "sample_data" in changes:
        template.sample_data = check_metadata(changes["sample_data"])
    if changes.get("is_default"):
        for sibling in session.execute(select(Template).where(Template.kind == kind, Template.name == template.name,
                                                              Template.id != template.id)).scalars():
            sibling.is_default = False
        template.is_default = True
    template.revision += 1
    template.updated_at = utcnow()
    audit.record(session, actor=actor.username, action=f"{kind}.updated", object_type=kind, object_id=template.id,
                 details={"changed": sorted(changes)})
    events.emit(session, names.TEMPLATE_UPDATED, {"template_id": template.id, "changed": sorted(changes)})
    return template


def template_document(session: Session, template: Template) -> Document:
    """The repository document holding the template's DOCX."""
    return session.get(Document, template.document_id)


def version_row(session: Session, template: Template, label: str | None) -> DocumentVersion:
    """A version of the template's document: the given label, or the newest."""
    document = template_document(session, template)
    major, minor = parse_label(label) if label else (document.current_major, document.current_minor)
    row = session.execute(select(DocumentVersion).where(
        DocumentVersion.document_id == template.document_id, DocumentVersion.major == major,
        DocumentVersion.minor == minor)).scalar_one_or_none()
    if row is None:
        raise TemplateNotFoundError(f"{KIND_WORD[template.kind]} {template.name} has no version {major}.{minor}",
                                    version=f"{major}.{minor}")
    return row


def read_docx(session: Session, version: DocumentVersion) -> io.BytesIO:
    """A template version's DOCX in memory: templates are small, and zip reading needs to seek."""
    if version.size > MAX_TEMPLATE_BYTES:
        raise InvalidInputError(f"the template is larger than {MAX_TEMPLATE_BYTES // (1024 * 1024)} MiB")
    return io.BytesIO(b"".join(service.read_version(session, version=version)))
