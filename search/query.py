"""The query language: words, "phrases", AND / OR / NOT, prefix*, parentheses; parsed once into a small tree
that every backend translates (so SQLite FTS5, PostgreSQL and Elasticsearch answer the same question).

Adjacent terms mean AND. NOT binds tighter than AND, AND tighter than OR. A leading "-" is NOT. A query made
only of negations is refused (it would list everything the caller may read but the excluded).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from search.errors import QuerySyntaxError

MAX_QUERY = 1000
MAX_TERMS = 64
MAX_NESTING = 10  # parentheses; the translated FTS5 expression nests about twice as deep, and FTS5 stops at ~32
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Term:
    """A word (or the start of one, when prefix)."""

    text: str
    prefix: bool = False


@dataclass(frozen=True)
class Phrase:
    """Words next to each other, in order."""

    words: tuple[str, ...]


@dataclass(frozen=True)
class And:
    """Every part matches."""

    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """Any part matches."""

    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """The part does not match (only inside an AND with a positive part)."""

    part: Node


Node = Term | Phrase | And | Or | Not


def words_of(text: str) -> list[str]:
    """The words of a text as every backend's analyser sees them: letters and digits, lower case, accents
    removed (FTS5 unicode61 remove_diacritics, ES standard tokenizer with asciifolding)."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return [w.lower() for w in _WORD.findall(folded)]


@dataclass(frozen=True)
class _Token:
    kind: str  # WORD, PHRASE, AND, OR, NOT, LPAREN, RPAREN
    value: str
    pos: int


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise QuerySyntaxError(f"unclosed quote at position {i}: close the phrase with \"", position=i)
            out.append(_Token("PHRASE", text[i + 1:end], i))
            i = end + 1
        elif c in "()":
            out.append(_Token("LPAREN" if c == "(" else "RPAREN", c, i))
            i += 1
        elif c == "-" and i + 1 < len(text) and not text[i + 1].isspace() and (i == 0 or text[i - 1] in " \t\n(("):
            out.append(_Token("NOT", "-", i))
            i += 1
        else:
            start = i
            while i < len(text) and not text[i].isspace() and text[i] not in '()"':
                i += 1
            raw = text[start:i]
            out.append(_Token(raw if raw in ("AND", "OR", "NOT") else "WORD", raw, start))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.terms = 0
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def fail(self, message: str, pos: int | None = None) -> QuerySyntaxError:
        pos = len(self.text) if pos is None else pos
        return QuerySyntaxError(f"{message} at position {pos}", position=pos)

    def parse(self) -> Node:
        node = self.or_expr()
        tok = self.peek()
        if tok is not None:
            raise self.fail("')' without a matching '('" if tok.kind == "RPAREN" else f"unexpected {tok.value!r}",
                            tok.pos)
        return node

    def or_expr(self) -> Node:
        parts = [self.and_expr()]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.i += 1
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_expr(self) -> Node:
        parts = [self.unary()]
        while (tok := self.peek()) is not None and tok.kind not in ("OR", "RPAREN"):
            if tok.kind == "AND":
                self.i += 1
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise self.fail("the query ends where a word, phrase or '(' was expected")
        if tok.kind == "NOT":
            self.i += 1
            return Not(self.unary())
        if tok.kind in ("AND", "OR"):
            raise self.fail(f"{tok.value} needs a word or phrase before it", tok.pos)
        if tok.kind == "RPAREN":
            raise self.fail("')' without a matching '('", tok.pos)
        self.i += 1
        if tok.kind == "LPAREN":
            if (nxt := self.peek()) is not None and nxt.kind == "RPAREN":
                raise self.fail("empty parentheses", tok.pos)
            if self.depth == MAX_NESTING:
                raise self.fail(f"parentheses nested more than {MAX_NESTING} deep", tok.pos)
            self.depth += 1
            node = self.or_expr()
            self.depth -= 1
            close = self.peek()
            if close is None or close.kind != "RPAREN":
                raise self.fail("'(' is never closed", tok.pos)
            self.i += 1
            return node
        return self.leaf(tok)

    def leaf(self, tok: _Token) -> Node:
        if tok.kind == "PHRASE":
            words = tuple(words_of(tok.value))
            if not words:
                raise self.fail("an empty phrase", tok.pos)
            self.count(len(words))
            return Phrase(words) if len(words) > 1 else Term(words[0])
        prefix = tok.value.endswith("*")
        raw = tok.value.rstrip("*") if prefix else tok.value
        if "*" in raw:
            raise self.fail("'*' is only allowed at the end of a word (prefix search)", tok.pos + raw.index("*"))
        words = words_of(raw)
        if not words:
            raise self.fail(f"{tok.value!r} has no letters or digits to search for", tok.pos)
        if prefix and len(words[-1]) < 2:
            raise self.fail("a prefix search needs at least 2 characters before '*'", tok.pos)
        self.count(len(words))
        if len(words) == 1:
            return Term(words[0], prefix)
        if prefix:  # "e-mail*": a phrase ending in a prefix is not expressible everywhere; AND the parts instead
            return And(tuple(Term(w, i == len(words) - 1) for i, w in enumerate(words)))
        return Phrase(tuple(words))  # "o'brien" is the phrase "o brien", as the indexers split it

    def count(self, n: int) -> None:
        self.terms += n
        if self.terms > MAX_TERMS:
            raise self.fail(f"too many terms (at most {MAX_TERMS})")


def _positive(node: Node) -> bool:
    if isinstance(node, Not):
        return False
    if isinstance(node, And):
        return any(_positive(p) for p in node.parts)
    if isinstance(node, Or):
        return all(_positive(p) for p in node.parts)
    return True


def _check_negations(node: Node) -> None:
    """The whole query, every OR branch and every NOT's operand need something that must match."""
    if not _positive(node):
        raise QuerySyntaxError("a query (and each side of an OR) needs at least one word or phrase that must "
                               "match, not only NOT parts (position 0)", position=0)
    if isinstance(node, Not):
        _check_negations(node.part)
    for child in getattr(node, "parts", ()):
        _check_negations(child.part if isinstance(node, And) and isinstance(child, Not) else child)


def parse(text: str | None) -> Node | None:
    """The tree of a query; None for an empty query (match everything the filters allow)."""
    if text is None or not text.strip():
        return None
    if len(text) > MAX_QUERY:
        raise QuerySyntaxError(f"the query is longer than {MAX_QUERY} characters at position {MAX_QUERY}",
                               position=MAX_QUERY)
    node = _Parser(text).parse()
    _check_negations(node)
    return node
