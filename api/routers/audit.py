"""The audit trail, for auditors and admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from api.deps import CurrentUser
from repository.access import require_role
from repository.db import transaction
from repository.models import AuditEntry
from repository.schemas import AuditEntryOut

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("")
def list_audit(
    user: CurrentUser,
    object_id: Annotated[str | None, Query(max_length=100)] = None,
    actor: Annotated[str | None, Query(max_length=150)] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    after: Annotated[int, Query(ge=0, description="return rows with seq greater than this")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict:
    """Audit rows in chain order, filtered; page with `after=<next_after>`."""
    require_role(user, "auditor", "admin")
    stmt = select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(limit + 1)
    if object_id:
        stmt = stmt.where(AuditEntry.object_id == object_id)
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    with transaction(readonly=True) as session:
        rows = list(session.execute(stmt).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    items = [AuditEntryOut.model_validate(r, from_attributes=True).model_dump(mode="json") for r in rows]
    return {"items": items, "next_after": rows[-1].seq if more else None}
