"""Correspondence templates and content blocks as editable DOCX files:

    /dav/templates/<name>.docx            the default variant        /dav/templates/<name>.<locale>.docx   another
    /dav/content-blocks/<name>.docx       (the same for blocks)

Each file is the template's repository document, so LOCK, PUT and UNLOCK check it out, save the working copy and
check in the next minor version exactly as for any document (the template validators run at check-in)."""

from __future__ import annotations

from wsgidav import util

from api.dav._common import actor, service
from api.dav._content import info
from api.dav._documents import DocumentFile, _ReadOnlyCollection
from correspondence import service as correspondence
from correspondence.errors import TemplateNotFoundError

KINDS = {"templates": "template", "content-blocks": "block"}  # the namespaces under /dav/ and their kinds
SUFFIX = ".docx"


def file_name(template) -> str:  # noqa: ANN001
    """A template variant's file name: <name>.docx for the default variant, <name>.<locale>.docx otherwise."""
    return f"{template.name}{SUFFIX}" if template.is_default else f"{template.name}.{template.locale}{SUFFIX}"


def _parse(name: str) -> tuple[str, str | None] | None:
    if not name.endswith(SUFFIX) or len(name) > 200:
        return None
    stem = name[: -len(SUFFIX)]
    base, _, locale = stem.partition(".")
    return (base, locale or None) if base else None


class TemplateCollection(_ReadOnlyCollection):
    """/dav/templates/ or /dav/content-blocks/: every variant the caller may read."""

    def __init__(self, path: str, environ: dict, kind: str) -> None:
        super().__init__(path, environ)
        self.kind = kind

    def get_member_names(self) -> list[str]:
        with service(readonly=True) as session:
            templates = correspondence.list_templates(session, actor=actor(self.environ), kind=self.kind)
            return [file_name(t) for t in templates]

    def get_member(self, name):  # noqa: ANN001, ANN201
        return resolve_file(util.join_uri(self.path, name), self.kind, name, self.environ)


def resolve_file(path: str, kind: str, name: str, environ: dict):  # noqa: ANN201
    """The document file of a template variant, or None."""
    parsed = _parse(name)
    if parsed is None:
        return None
    base, locale = parsed
    user = actor(environ)
    with service(readonly=True) as session:
        try:
            template = correspondence.get_template_by_name(session, actor=user, name=base, kind=kind, locale=locale)
        except TemplateNotFoundError:
            return None
        if locale is None and not template.is_default:
            return None
        if locale is not None and template.locale.lower() != locale.lower():
            return None  # no such variant (the service would fall back to another locale)
        return DocumentFile(path, environ, info(session, user, template.document_id), filed=False)


def resolve(path: str, head: str, rest: list[str], environ: dict):  # noqa: ANN201
    """A path below /dav/templates/ or /dav/content-blocks/."""
    kind = KINDS[head]
    if not rest:
        return TemplateCollection(path, environ, kind)
    if len(rest) == 1:
        return resolve_file(path, kind, rest[0], environ)
    return None
