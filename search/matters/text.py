"""A document's text as the index would hold it now, and the query tree judged over it in Python: how a hold
decides the text part for documents the index has not caught up with (see preserve.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from repository.models import DocumentVersion
from search.indexing import extract_version
from search.models import SearchEntry
from search.query import And, Node, Not, Or, Phrase, Term, words_of


def indexed_text(session: Session, version: DocumentVersion) -> tuple[str, str] | None:
    """(text, status) the index holds for this version's content, or None when it holds other content."""
    entry = session.execute(select(SearchEntry.body, SearchEntry.text_status, SearchEntry.content_sha256)
                            .where(SearchEntry.document_id == version.document_id)).first()
    if entry is None or entry.content_sha256 != version.sha256:
        return None
    return entry.body, entry.text_status


def current_text(session: Session, version: DocumentVersion) -> tuple[str, str]:
    """(text, status) of a version: the index's extraction of the same content, else extracted now (with the
    indexer's size cap and time limit)."""
    found = indexed_text(session, version)
    if found is not None:
        return found
    body, status, _error = extract_version(session, version.document_id, version)
    return body, status


def _has_phrase(words: list[str], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(words[i] == phrase[0] and tuple(words[i:i + n]) == phrase for i in range(len(words) - n + 1))


def matches(expr: Node, title: str, body: str) -> bool:
    """True when the query tree matches the title or body as the FTS5 backend judges it: words folded by
    `words_of`, a prefix matches the start of a word, a phrase lies within one of the two."""
    columns = [words_of(title), words_of(body)]
    vocab = set(columns[0]) | set(columns[1])

    def judge(node: Node) -> bool:
        if isinstance(node, Term):
            return any(w.startswith(node.text) for w in vocab) if node.prefix else node.text in vocab
        if isinstance(node, Phrase):
            return any(_has_phrase(words, node.words) for words in columns)
        if isinstance(node, Or):
            return any(judge(p) for p in node.parts)
        if isinstance(node, And):
            return all(judge(p) for p in node.parts)
        if isinstance(node, Not):
            return not judge(node.part)
        raise TypeError(f"unknown query node {node!r}")

    return judge(expr)
