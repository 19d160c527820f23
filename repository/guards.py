"""Change guards that other packages register (a declared record's content may not change, a held document may
not be deleted). The repository cannot import records; records registers a guard at start-up and the repository
asks every guard before it changes a document's content or deletes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from sqlalchemy.orm import Session

from repository.models import Document

# "checkout": take the lock; "content": a new version or working copy; "trash": move to the trash.
Operation = Literal["checkout", "content", "trash"]
Guard = Callable[[Session, Document, Operation], None]
_guards: dict[str, Guard] = {}


def register(name: str, guard: Guard) -> None:
    """Ask `guard` before every guarded change; it raises a repository error to refuse."""
    _guards[name] = guard


def unregister(name: str) -> None:
    """Forget one guard (tests)."""
    _guards.pop(name, None)


def check(session: Session, document: Document, operation: Operation) -> None:
    """Run every registered guard on a change about to be made to the document."""
    for guard in list(_guards.values()):
        guard(session, document, operation)
