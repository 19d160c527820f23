"""Dead WebDAV properties in the database, keyed by repository object ("document:<id>", "folder:<id>"), so a
property set through one URL is seen through every URL of the object and survives restarts and renames."""

from __future__ import annotations

from sqlalchemy import delete, select
from wsgidav.dav_error import HTTP_INSUFFICIENT_STORAGE, DAVError

from repository.db import transaction
from repository.models import DavProperty

MAX_VALUE = 64 * 1024
MAX_NAME = 1000
MAX_PER_RESOURCE = 500


def names(resource: str) -> list[str]:
    """The names of a resource's dead properties."""
    with transaction(readonly=True) as session:
        return list(session.execute(
            select(DavProperty.name).where(DavProperty.resource == resource).order_by(DavProperty.name)
        ).scalars())


def get(resource: str, name: str) -> str | None:
    """A property's XML, or None."""
    with transaction(readonly=True) as session:
        row = session.get(DavProperty, (resource, name))
        return row.value if row else None


def put(resource: str, name: str, value: str | None, *, dry_run: bool = False) -> None:
    """Set (or, with None, remove) a property; checks limits first, and changes nothing on a dry run."""
    if value is not None and (len(value) > MAX_VALUE or len(name) > MAX_NAME):
        raise DAVError(HTTP_INSUFFICIENT_STORAGE, f"property values are limited to {MAX_VALUE} characters")
    if dry_run:
        return
    with transaction() as session:
        row = session.get(DavProperty, (resource, name))
        if value is None:
            if row is not None:
                session.delete(row)
            return
        if row is not None:
            row.value = value
            return
        count = len(session.execute(select(DavProperty.name).where(DavProperty.resource == resource)).all())
        if count >= MAX_PER_RESOURCE:
            raise DAVError(HTTP_INSUFFICIENT_STORAGE, f"a resource keeps at most {MAX_PER_RESOURCE} properties")
        session.add(DavProperty(resource=resource, name=name, value=value))


def copy(source: str, target: str) -> None:
    """Give `target` the dead properties of `source` (replacing its own)."""
    with transaction() as session:
        session.execute(delete(DavProperty).where(DavProperty.resource == target))
        for row in session.execute(select(DavProperty).where(DavProperty.resource == source)).scalars().all():
            session.add(DavProperty(resource=target, name=row.name, value=row.value))


def remove_all(resource: str) -> None:
    """Forget every dead property of a resource."""
    with transaction() as session:
        session.execute(delete(DavProperty).where(DavProperty.resource == resource))
