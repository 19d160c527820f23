"""The time records management decides by; tests move it forward to let retention run out."""

from __future__ import annotations

import datetime as dt

from repository.types import utcnow

_offset = dt.timedelta(0)


def now() -> dt.datetime:
    """The current time as records management sees it (UTC, aware)."""
    return utcnow() + _offset


def advance(delta: dt.timedelta) -> None:
    """Move records time forward (tests, the state-machine test's "time passes" step)."""
    global _offset
    _offset += delta


def reset() -> None:
    """Back to real time (tests)."""
    global _offset
    _offset = dt.timedelta(0)
