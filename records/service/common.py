"""Small pieces every records service uses: who may manage records, hold checks, audit and event helpers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from records.models import HoldItem, RecordInfo
from repository import audit, events
from repository.access import RECORDS_MANAGER, require_role
from repository.models import User

SYSTEM = "system:records"


def require_records_manager(actor: User) -> None:
    """PermissionDeniedError unless the actor is a records manager (or an admin)."""
    require_role(actor, RECORDS_MANAGER)


def active_holds(session: Session, document_id: str) -> list[str]:
    """The ids of the active holds covering a document."""
    return list(session.execute(select(HoldItem.hold_id).where(
        HoldItem.document_id == document_id, HoldItem.released_at.is_(None)).order_by(HoldItem.hold_id)).scalars())


def is_held(session: Session, document_id: str) -> bool:
    """True while at least one active hold covers the document."""
    return bool(active_holds(session, document_id))


def held_clause():  # noqa: ANN201
    """An SQL condition true for RecordInfo rows under at least one active hold (indexed anti-join)."""
    return exists().where(HoldItem.document_id == RecordInfo.document_id, HoldItem.released_at.is_(None))


def note(session: Session, *, actor: str, action: str, object_type: str, object_id: str | None,
         details: dict[str, Any] | None = None, event: str | None = None,
         payload: dict[str, Any] | None = None) -> None:
    """Audit a records action and, when named, emit its outbox event in the same transaction."""
    audit.record(session, actor=actor, action=action, object_type=object_type, object_id=object_id,
                 details=details or {})
    if event is not None:
        events.emit(session, event, payload if payload is not None else {"id": object_id})
