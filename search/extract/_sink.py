"""The text sink every extractor writes into: whitespace-normalised, capped at max_chars while extracting."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Control characters count as whitespace (PostgreSQL text cannot hold NUL); lone surrogates (from JSON escapes
# or broken PDFs) cannot be encoded as UTF-8, so they become U+FFFD.
_SPACE = re.compile(r"[\s\x00-\x08\x0e-\x1f\x7f]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _separator(match: re.Match[str]) -> str:
    run = match.group()
    return "\n" if "\n" in run or "\r" in run else " "


class ExtractionError(Exception):
    """A file that cannot be read; the message is the short reason the caller sees."""


class Full(Exception):  # noqa: N818 (a signal, not an error)
    """Raised by the sink when max_chars is reached, to stop the extractor early."""


@dataclass(frozen=True)
class Options:
    """What an extractor may need besides the content."""

    max_chars: int
    max_bytes: int
    charset: str | None = None
    filename: str = ""


class TextSink:
    """Collects text; runs of whitespace become one space, or one newline if they contain a line break."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.length = 0
        self._parts: list[str] = []
        self._pending = ""  # the separator owed before the next visible text

    def write(self, text: str) -> None:
        """Add text that continues the current flow (chunks may split words; no separator is added)."""
        if not text:
            return
        if _SURROGATE.search(text):
            text = _SURROGATE.sub("\ufffd", text)
        # now every whitespace run is exactly one " " or "\n"
        text = _SPACE.sub(_separator, text) if ("\n" in text or "\r" in text) else _SPACE.sub(" ", text)
        if text[0] in " \n":
            self._owe(text[0])
            text = text[1:]
        trailing = ""
        if text and text[-1] in " \n":
            trailing, text = text[-1], text[:-1]
        self._emit(text)
        if trailing:
            self._owe(trailing)

    def newline(self) -> None:
        """End a block (paragraph, table cell, header line): the next text starts on a new line."""
        self._owe("\n")

    def space(self) -> None:
        """Separate what follows from what came before by at least a space (an element boundary)."""
        self._owe(" ")

    def text(self) -> str:
        """The text so far."""
        return "".join(self._parts)

    def _owe(self, sep: str) -> None:
        if self._pending != "\n":
            self._pending = sep

    def _emit(self, visible: str) -> None:
        if not visible:
            return
        if self._pending and self.length:
            self._append(self._pending)
        self._pending = ""
        self._append(visible)

    def _append(self, piece: str) -> None:
        room = self.max_chars - self.length
        if len(piece) > room:
            if room > 0:
                self._parts.append(piece[:room])
                self.length += room
            raise Full
        self._parts.append(piece)
        self.length += len(piece)
