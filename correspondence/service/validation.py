"""Checks run by the repository before it stores a new version of a template or content block: the Jinja must
parse and every block it includes must exist. A refusal is a 422 that names the tag and its paragraph."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from correspondence import rendering
from correspondence.errors import UnknownBlockError
from correspondence.models import BLOCK, Template
from correspondence.service.templates import DOCUMENT_TYPE, MAX_TEMPLATE_BYTES
from repository import validators
from repository.errors import InvalidInputError, UnsupportedMediaTypeError

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _inspect(candidate: validators.Candidate) -> rendering.TemplateInfo:
    if candidate.media_type != DOCX:
        raise UnsupportedMediaTypeError(f"a {candidate.document_type} must be a DOCX file; this upload is "
                                        f"{candidate.media_type}", media_type=candidate.media_type)
    if candidate.size > MAX_TEMPLATE_BYTES:
        raise InvalidInputError(f"a {candidate.document_type} may be at most "
                                f"{MAX_TEMPLATE_BYTES // (1024 * 1024)} MiB")
    with candidate.open() as f:
        return rendering.inspect_template(f)


def check_template(session: Session, candidate: validators.Candidate) -> None:
    """A template version must parse and may include only blocks that exist."""
    info = _inspect(candidate)
    known = set(session.execute(select(Template.name).where(Template.kind == BLOCK,
                                                            Template.name.in_(sorted(info.blocks)))).scalars())
    missing = sorted(info.blocks - known)
    if missing:
        tag, paragraph = info.block_places.get(missing[0], (f"{{{{ block('{missing[0]}') }}}}", ""))
        raise UnknownBlockError(f"the template includes content block(s) that do not exist: {', '.join(missing)}",
                                tag=tag, paragraph=paragraph, blocks=missing)


def check_block(session: Session, candidate: validators.Candidate) -> None:
    """A content block version must parse and may not include other blocks."""
    info = _inspect(candidate)
    if info.blocks:
        raise InvalidInputError("a content block may not include other blocks: "
                                f"{', '.join(sorted(info.blocks))}", blocks=sorted(info.blocks))


def register() -> None:
    """Ask the repository to run these checks on templates and blocks."""
    validators.register(DOCUMENT_TYPE["template"], "correspondence.template", check_template)
    validators.register(DOCUMENT_TYPE["block"], "correspondence.block", check_block)
