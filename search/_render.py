"""Query-tree translation and snippet clean-up shared by the SQL backends."""

from __future__ import annotations

import html

from search.query import And, Node, Not, Or, Phrase, Term

# Snippet markers no document text contains: the text is HTML-escaped and then they become <mark> tags.
OPEN, CLOSE = "\x02", "\x03"


def safe_snippet(raw: str | None) -> str:
    """An HTML-safe snippet with the matches wrapped in <mark>…</mark>."""
    return html.escape(raw or "").replace(OPEN, "<mark>").replace(CLOSE, "</mark>")


def fts5(node: Node) -> str:
    """The FTS5 MATCH expression for a query tree (every word quoted, so no input is FTS5 syntax)."""
    if isinstance(node, Term):
        return f'"{node.text}"' + ("*" if node.prefix else "")
    if isinstance(node, Phrase):
        return '"' + " ".join(node.words) + '"'
    if isinstance(node, Or):
        return "(" + " OR ".join(fts5(p) for p in node.parts) + ")"
    if isinstance(node, And):
        positive = [fts5(p) for p in node.parts if not isinstance(p, Not)]
        negative = [fts5(p.part) for p in node.parts if isinstance(p, Not)]
        expr = "(" + " AND ".join(positive) + ")"
        return f"({expr} NOT ({' OR '.join(negative)}))" if negative else expr
    raise ValueError("a NOT outside an AND cannot be translated")  # the parser refuses these


def tsquery(node: Node) -> str:
    """The PostgreSQL to_tsquery('simple', ...) text for a query tree (lexemes are letters and digits only)."""
    if isinstance(node, Term):
        return f"'{node.text}'" + (":*" if node.prefix else "")
    if isinstance(node, Phrase):
        return "(" + " <-> ".join(f"'{w}'" for w in node.words) + ")"
    if isinstance(node, Or):
        return "(" + " | ".join(tsquery(p) for p in node.parts) + ")"
    if isinstance(node, And):
        return "(" + " & ".join(f"!{tsquery(p.part)}" if isinstance(p, Not) else tsquery(p)
                                for p in node.parts) + ")"
    raise ValueError("a NOT outside an AND cannot be translated")
