"""Per-render state (locale, images placed so far) that filters and `image()` reach through a context variable.

A compiled template is shared by threads, so nothing per render may live on it; the state travels in a
`ContextVar` instead of the Jinja context, where a template could read it.
"""

from __future__ import annotations

import contextvars
import posixpath
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

from babel import Locale, UnknownLocaleError

DEFAULT_LOCALE = "en-GB"
MAX_SECONDS = 10.0  # the time limit of rendering one letter


@lru_cache(maxsize=512)
def resolve_locale(tag: str | None) -> Locale:
    """The babel locale for a tag such as "de-DE" or "de_DE"; en-GB when it is missing or unknown."""
    if isinstance(tag, str) and tag.strip():
        try:
            return Locale.parse(tag.strip().replace("-", "_"))
        except (ValueError, TypeError, UnknownLocaleError):
            pass
    return Locale.parse(DEFAULT_LOCALE.replace("-", "_"))


@dataclass
class Media:
    """An image placed in the output: its zip member and pixel size."""

    name: str
    ext: str
    data: bytes
    cx: int
    cy: int
    px_width: int
    px_height: int


@dataclass
class RenderState:
    """What one render (or one batch) has placed so far."""

    locale: Locale
    named_images: Mapping[str, bytes]
    part: str = "word/document.xml"
    output: int = 0  # characters of XML rendered for the current letter (sandbox.MAX_OUTPUT)
    built: int = 0   # characters and items the template made for the current letter (sandbox.MAX_BUILT)
    steps: int = 0   # block bodies run and items looped over for the current letter (steps.MAX_STEPS)
    time_limit: float = MAX_SECONDS  # seconds one letter may take to render (sandbox: checked at every step)
    started: float = field(default_factory=time.monotonic)  # when the current letter began
    media: dict[bytes, Media] = field(default_factory=dict)
    rels: dict[str, dict[str, str]] = field(default_factory=dict)  # part -> media name -> rId

    def new_letter(self) -> None:
        """Start counting output and made values afresh (each letter of a batch has its own limits)."""
        self.output = self.built = self.steps = 0
        self.started = time.monotonic()

    def rel_for(self, media: Media) -> str:
        """The relationship id of `media` from the part being rendered, created on first use."""
        rels = self.rels.setdefault(self.part, {})
        rid = rels.get(media.name)
        if rid is None:
            rid = rels[media.name] = f"rIdPostroom{len(rels) + 1}"
        return rid

    def relationships_xml(self, part: str, original: str | None) -> str | None:
        """The part's .rels text with the image relationships this render added (None if it added none)."""
        added = self.rels.get(part)
        if not added:
            return None
        base = posixpath.dirname(part)
        extra = "".join(
            f'<Relationship Id="{rid}" Type="{IMAGE_REL}" Target="{posixpath.relpath(name, base)}"/>'
            for name, rid in added.items())
        if original is None:
            return f'{XML_DECL}<Relationships xmlns="{RELS_NS}">{extra}</Relationships>'
        end = original.rfind("</Relationships>")
        if end >= 0:
            return original[:end] + extra + original[end:]
        empty = original.rstrip()
        if empty.endswith("/>"):  # <Relationships .../>
            return f"{empty[:-2]}>{extra}</Relationships>"
        return f'{XML_DECL}<Relationships xmlns="{RELS_NS}">{extra}</Relationships>'


XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
RELS_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
IMAGE_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/image"

_STATE: contextvars.ContextVar[RenderState] = contextvars.ContextVar("postroom_render_state")


def current() -> RenderState:
    """The state of the render in progress."""
    try:
        return _STATE.get()
    except LookupError:
        raise RuntimeError("letter filters and image() work only while Postroom renders a letter") from None


def active_state() -> RenderState | None:
    """The state of the render in progress, or None outside a render (compiling, say)."""
    return _STATE.get(None)


@contextmanager
def active(state: RenderState) -> Iterator[RenderState]:
    """Make `state` the current render state for the duration of the block."""
    token = _STATE.set(state)
    try:
        yield state
    finally:
        _STATE.reset(token)


def rels_name(part: str) -> str:
    """The relationships member of a part: word/header1.xml -> word/_rels/header1.xml.rels."""
    return posixpath.join(posixpath.dirname(part), "_rels", posixpath.basename(part) + ".rels")
