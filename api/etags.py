"""Entity tags over object revisions: the ETag header value, and the revision an If-Match asks for."""

from __future__ import annotations

import re

from repository.errors import PreconditionFailedError

_TAG = re.compile(r'"\d{1,12}"')


def etag(revision: int) -> str:
    """The strong ETag of a revision."""
    return f'"{revision}"'


def expected_revision(if_match: str | None, what: str) -> int | None:
    """The revision an If-Match header requires; None when absent or `*`; 412 for a tag this API never gave."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip()
    if not _TAG.fullmatch(tag):
        raise PreconditionFailedError(f"If-Match {tag} is not an ETag of this {what}")
    return int(tag.strip('"'))
