"""Steps and time while a letter (or a message part) renders: every block body run and every item a loop or
`range()` hands out is a step; a letter may take MAX_STEPS of them and its RenderState.time_limit in seconds
(sandbox.py explains what this bounds)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.sandbox import safe_range

from correspondence.rendering.state import active_state

MAX_STEPS = 1_000_000


def step() -> None:
    """Count one step (a block body run, an item looped over) against MAX_STEPS and the time limit of the letter
    being rendered."""
    state = active_state()
    if state is not None:
        state.steps += 1
        if state.steps > MAX_STEPS:
            raise SecurityError(f"the template runs more than {MAX_STEPS:,} loop rounds, branches or macro calls "
                                "for one letter, more than the sandbox allows")
        if time.monotonic() - state.started > state.time_limit:
            raise SecurityError(f"the template takes longer than {state.time_limit:g} s to render one letter, "
                                "more than the sandbox allows")


class CountedRange(Sequence[int]):
    """range() as the sandbox gives it: at most MAX_RANGE items, each a step when iterated (by a loop or a filter
    such as |sort or |max); length, indexing and `in` cost nothing."""

    __slots__ = ("_range",)

    def __init__(self, inner: range) -> None:
        self._range = inner

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, index: Any) -> Any:
        found = self._range[index]
        return CountedRange(found) if isinstance(found, range) else found

    def __contains__(self, value: object) -> bool:
        return value in self._range

    def __iter__(self) -> Iterator[int]:
        for item in self._range:
            step()
            yield item

    def __reversed__(self) -> Iterator[int]:
        return iter(CountedRange(self._range[::-1]))

    def __repr__(self) -> str:
        return repr(self._range)


def counted_range(*args: int) -> CountedRange:
    """range() as templates call it: at most MAX_RANGE items, counted when iterated."""
    return CountedRange(safe_range(*args))
