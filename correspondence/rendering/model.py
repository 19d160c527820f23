"""The values the rendering engine takes and returns, and the render context it expects."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from correspondence.errors import DataValidationError

RESERVED = ("customer", "letter", "today")


@dataclass(frozen=True)
class BlockSource:
    """An approved content block, given by the caller: its body paragraphs and tables are what gets included."""

    name: str
    docx: bytes


@dataclass(frozen=True)
class Rule:
    """One row of a template's targeting table; the first true rule of a slot chooses its block."""

    slot: str
    condition: str
    block: str


@dataclass(frozen=True)
class TemplateInfo:
    """What a template reads and includes, found by parsing it (never by rendering it)."""

    variables: frozenset[str]
    blocks: frozenset[str]
    slots: frozenset[str]
    has_images: bool
    # Where each block is first included, as (tag, paragraph text), so a check can point at it.
    block_places: Mapping[str, tuple[str, str]] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class InlineImageData:
    """An image given in the letter data (a signature, say), placed with `{{ image(sender.signature) }}`."""

    data: bytes
    width_mm: float | None = None

    def __repr__(self) -> str:
        return f"InlineImageData({len(self.data)} bytes, width_mm={self.width_mm})"


@dataclass(frozen=True)
class BatchItem:
    """One letter of a batch: its position in the input and the bookmark at its first paragraph."""

    index: int
    bookmark: str


@dataclass
class RenderedBatch:
    """The DOCX of a batch (None when it was written to the caller's file) and where each letter starts."""

    docx: bytes | None
    letters: list[BatchItem] = field(default_factory=list)


def make_context(data: Mapping[str, Any], *, customer: Mapping[str, Any], letter: Mapping[str, Any],
                 today: dt.date | None = None) -> dict[str, Any]:
    """The render context: the letter's data at the top level plus `customer`, `letter` and `today`."""
    clash = sorted(name for name in RESERVED if name in data)
    if clash:
        raise DataValidationError(
            f"the letter data uses the reserved name(s) {', '.join(clash)}; "
            f"{', '.join(RESERVED)} are filled in by Postroom, rename these fields",
            problems=[f"{name}: reserved name" for name in clash])
    return {**data, "customer": customer, "letter": letter, "today": today or dt.date.today()}
