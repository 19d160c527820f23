"""The Elasticsearch side of the search contract: the index mappings, the document body sent for an IndexDoc,
and the search requests for a SearchQuery (query tree → bool query, filters, sort, highlights; the facets
apart).

Matching uses `title_words`/`body_words`: the text as `search.query.words_of` splits it (letters and digits,
lower case, accents removed), joined by spaces and indexed with the built-in `whitespace` analyzer. So
Elasticsearch sees exactly the words FTS5 sees, on any Elasticsearch 9 node: the integ-test-zip has no
analysis-common module (no asciifolding, no pattern tokenizer), and a plugin would have to be installed on
every production node. `title`/`body` keep the text as written (standard analyzer) for the snippets."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any

from search.backend import IndexDoc, SearchQuery, TypeScope
from search.query import And, Node, Not, Or, Phrase, Term, words_of

OPEN, CLOSE = "<mark>", "</mark>"
TOP_CUSTOMERS = 20
MAX_YEARS = 1000  # year facet buckets: every year there is
TITLE_BOOST = 4.0  # as FTS5's bm25 weights the title column
SNIPPET_CHARS = 200
HIGHLIGHT_MAX_CHARS = 200_000  # snippets come from the first 200,000 characters of a long text
WORD_FIELDS = ("title_words", "body_words")
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+")

_TEXT = {"type": "text", "analyzer": "standard"}
# index_phrases: each pair of neighbouring words is indexed as one term too, so a phrase is matched from those
# (a two-word phrase is one term lookup) instead of reading every word's positions: about half the time of a
# phrase found in a fifth of a million documents, for about twice the index size.
_WORDS = {"type": "text", "analyzer": "whitespace", "index_phrases": True}
_KEYWORD = {"type": "keyword"}

MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "_meta": {"mappings": 3},  # 2: the `year` field and index_phrases; 3: `type_and_year`
    # The word copies are for matching only; _source keeps the text once.
    "_source": {"excludes": list(WORD_FIELDS)},
    "properties": {
        "document_id": _KEYWORD,
        "revision": {"type": "long"},
        "version": _KEYWORD,
        "title": {**_TEXT, "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}},
        "title_words": _WORDS,
        "body": _TEXT,
        "body_words": _WORDS,
        "document_type_id": _KEYWORD,
        "document_type": _KEYWORD,
        "customer_id": _KEYWORD,
        "created_at": {"type": "date"},
        # Of created_at in UTC: the year facet of an index made before `type_and_year`; still written, as the
        # previous version's processes write it (the mapping is strict) during an upgrade.
        "year": _KEYWORD,
        # "<type id> <year>": one terms aggregation counts the type and the year facets, reading one value a
        # match where two would read two (a fifth less time for the facets of a broad query)
        "type_and_year": _KEYWORD,
        # `meta.key=value` filters are term queries on metadata.key (every value indexed as a keyword; true as
        # "true"). Only top-level scalars are sent (`filterable`), so a dotted key is never a nested one.
        "metadata": {"type": "flattened", "ignore_above": 1024},
        "restricted": {"type": "boolean"},
        "text_status": _KEYWORD,
    },
}

SETTINGS: dict[str, Any] = {
    "number_of_shards": 1,
    "auto_expand_replicas": "0-1",  # no replica on a single node (green), one as soon as a second node joins
}


def source(doc: IndexDoc) -> dict[str, Any]:
    """The JSON document indexed for an IndexDoc."""
    created = _utc(doc.created_at)
    return {
        "document_id": doc.document_id, "revision": doc.revision, "version": doc.version,
        "title": doc.title, "title_words": words(doc.title),
        "body": doc.body, "body_words": words(doc.body),
        "document_type_id": doc.document_type_id, "document_type": doc.document_type,
        "customer_id": doc.customer_id, "created_at": created.isoformat(),
        "year": str(created.year), "type_and_year": f"{doc.document_type_id} {created.year}",
        "metadata": filterable(doc.metadata), "restricted": doc.restricted, "text_status": doc.text_status,
    }


def filterable(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The top-level scalar values only: the flattened field would also match nested keys and list elements,
    which the SQL backends do not (search/metadata.py)."""
    return {k: v for k, v in (metadata or {}).items() if v is not None and not isinstance(v, (dict, list))}


def words(text: str) -> str:
    """`words_of(text)` joined by spaces; ASCII text (most letters) takes a path about 3 times faster."""
    if text.isascii():  # NFKD changes nothing and nothing is combining: only the letters and digits remain
        return " ".join(_ASCII_WORD.findall(text)).lower()
    return " ".join(words_of(text))


def _utc(when: dt.datetime) -> dt.datetime:
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def _on_words(kind: str, value: str) -> dict[str, Any]:
    """The same query on the title and the body word fields (either may match, as in FTS5)."""
    key = "query" if kind == "match_phrase" else "value"
    return {"bool": {"should": [{kind: {"title_words": {key: value, "boost": TITLE_BOOST}}},
                                {kind: {"body_words": {key: value}}}],
                     "minimum_should_match": 1}}


def _phrase(words: tuple[str, ...], ranked: bool) -> dict[str, Any]:
    """A phrase: matched exactly, scored by its pairs of neighbouring words when it has more than one pair.
    Scored as a phrase, every document holding the words has its positions read to count the phrase, so a
    phrase found in a fifth of the index reads them all; scored by its pairs (each one indexed term, see
    _WORDS), the page skips the documents that cannot make it and reads positions only to confirm the rest."""
    exact = _on_words("match_phrase", " ".join(words))
    if len(words) < 3 or not ranked:  # one word or one pair is a single term lookup already
        return exact
    pairs = [_on_words("match_phrase", f"{a} {b}") for a, b in itertools.pairwise(words)]
    return {"bool": {"should": pairs, "minimum_should_match": 1, "filter": [exact]}}


def translate(node: Node, *, ranked: bool = True) -> dict[str, Any]:
    """The bool query for a query tree (the words are already normalised by the parser); `ranked=False` when
    no score is wanted (counting the facets)."""
    if isinstance(node, Term):
        return _on_words("prefix" if node.prefix else "term", node.text)
    if isinstance(node, Phrase):
        return _phrase(node.words, ranked)
    if isinstance(node, Or):
        return {"bool": {"should": [translate(p, ranked=ranked) for p in node.parts], "minimum_should_match": 1}}
    if isinstance(node, And):
        return {"bool": {"must": [translate(p, ranked=ranked) for p in node.parts if not isinstance(p, Not)],
                         "must_not": [translate(p.part, ranked=False) for p in node.parts if isinstance(p, Not)]}}
    raise ValueError("a NOT outside an AND cannot be translated")  # the parser refuses these


def _highlight_query(node: Node, field: str) -> dict[str, Any]:
    """The query tree's positive words against the text as written (for snippets only)."""
    if isinstance(node, Term):
        return {"prefix": {field: node.text}} if node.prefix else {"match": {field: node.text}}
    if isinstance(node, Phrase):
        return {"match_phrase": {field: " ".join(node.words)}}
    parts = [p for p in getattr(node, "parts", ()) if not isinstance(p, Not)]
    return {"bool": {"should": [_highlight_query(p, field) for p in parts]}}


def filters(query: SearchQuery, scope: TypeScope) -> list[dict[str, Any]]:
    """The filter clauses: readable types (when they are the shorter list), customer, dates, metadata."""
    out: list[dict[str, Any]] = []
    if scope.wanted:
        out.append({"terms": {"document_type_id": scope.wanted}})
    if query.customer_id is not None:
        out.append({"term": {"customer_id": query.customer_id}})
    created: dict[str, str] = {}
    if query.created_from is not None:
        created["gte"] = _utc(query.created_from).isoformat()
    if query.created_to is not None:
        created["lt"] = _utc(query.created_to).isoformat()
    if created:
        out.append({"range": {"created_at": created}})
    for key, value in query.meta.items():
        out.append({"term": {f"metadata.{key}": value}})
    return out


def exclusions(query: SearchQuery, scope: TypeScope) -> list[dict[str, Any]]:
    """The must_not clauses: unreadable types (when they are the shorter list) and restricted documents. Few
    documents match these, so excluding them costs little, where a filter that every document passes is a walk
    over the whole index on every query."""
    out: list[dict[str, Any]] = []
    if scope.others:
        out.append({"terms": {"document_type_id": scope.others}})
    if not query.include_restricted:
        out.append({"term": {"restricted": True}})
    return out


def _sort(query: SearchQuery) -> list[Any]:
    if query.sort == "oldest":
        return [{"created_at": "asc"}, {"document_id": "asc"}]
    if query.sort == "newest" or query.expr is None:
        return [{"created_at": "desc"}, {"document_id": "desc"}]
    # Score alone: any second sort key makes Elasticsearch collect by field, without the skipping it does for
    # scores (a broad phrase's page 3-5 ms slower at a million documents). Equal scores come in index order.
    return [{"_score": "desc"}]


def _aggregations(query: SearchQuery, mappings: int) -> dict[str, Any]:
    """The type, year and customer facets, as the live index's mappings (`_meta.mappings`) allow: an index made
    before `type_and_year` counts types and years apart, and one made before `year` counts years from
    created_at (slower), until `postroom reindex` replaces it."""
    types = max(len(query.type_ids), 1)
    customer = {"terms": {"field": "customer_id", "size": TOP_CUSTOMERS,
                          "order": [{"_count": "desc"}, {"_key": "asc"}]}}
    if mappings >= 3:  # every pair of a type and a year is a bucket, so each facet is their exact sum
        return {"type_and_year": {"terms": {"field": "type_and_year", "size": types * MAX_YEARS}},
                "customer": customer}
    year = ({"terms": {"field": "year", "size": MAX_YEARS, "order": {"_key": "desc"}}} if mappings == 2 else
            {"date_histogram": {"field": "created_at", "calendar_interval": "year", "format": "yyyy",
                                "time_zone": "UTC", "min_doc_count": 1, "order": {"_key": "desc"}}})
    return {"document_type": {"terms": {"field": "document_type_id", "size": types}}, "year": year,
            "customer": customer}


def facets(aggs: dict[str, Any]) -> dict[str, dict[str, int]]:
    """The facets from the facets search's aggregations: types by count (then id), years newest first,
    customers as Elasticsearch ordered them."""
    def buckets(name: str) -> dict[str, int]:
        return {str(b.get("key_as_string", b["key"])): b["doc_count"] for b in aggs.get(name, {}).get("buckets", [])}

    if "type_and_year" not in aggs:
        return {"document_type": buckets("document_type"), "year": buckets("year"), "customer": buckets("customer")}
    types: dict[str, int] = {}
    years: dict[str, int] = {}
    for key, count in buckets("type_and_year").items():
        type_id, year = key.rsplit(" ", 1)
        types[type_id] = types.get(type_id, 0) + count
        years[year] = years.get(year, 0) + count
    return {"document_type": dict(sorted(types.items(), key=lambda kv: (-kv[1], kv[0]))),
            "year": dict(sorted(years.items(), reverse=True)), "customer": buckets("customer")}


def _highlight(node: Node | None) -> dict[str, Any]:
    """Snippets: the best fragment of the body (its start when nothing in it matches) and the whole title."""
    body: dict[str, Any] = {"fragment_size": SNIPPET_CHARS, "number_of_fragments": 1, "no_match_size": SNIPPET_CHARS}
    title: dict[str, Any] = {"number_of_fragments": 0}
    if node is not None:
        body["highlight_query"] = _highlight_query(node, "body")
        title["highlight_query"] = _highlight_query(node, "title")
    return {"type": "unified", "encoder": "html", "pre_tags": [OPEN], "post_tags": [CLOSE],
            "max_analyzed_offset": HIGHLIGHT_MAX_CHARS, "require_field_match": False,
            "fields": {"body": body, "title": title}}


def search_bodies(query: SearchQuery, *, mappings: int = MAPPINGS["_meta"]["mappings"]) -> list[dict[str, Any]]:
    """The _search bodies for a query (sent as one _msearch): the page with its snippets; then, when facets are
    asked for, the facets and the total, counted without scores. Elasticsearch counts a facet of many distinct
    values (customers) on one thread, and a request holding one runs on one thread; asked apart, the page is
    searched on several threads while the facets are counted beside it. The facets visit every match anyway, so
    they count the total, and the page need only find its best hits: Elasticsearch then skips the blocks of
    documents that cannot make the page."""
    page: dict[str, Any] = {
        "query": _matching(query, ranked=True),
        "sort": _sort(query),
        "from": query.offset,
        "size": query.limit,
        "track_total_hits": not query.facets,
        "_source": ["title"],
    }
    if query.limit:
        page["highlight"] = _highlight(query.expr)
    if not query.facets:
        return [page]
    return [page, {"query": _matching(query, ranked=False), "size": 0, "track_total_hits": True,
                   "aggs": _aggregations(query, mappings)}]


def _matching(query: SearchQuery, *, ranked: bool) -> dict[str, Any]:
    """The query's words, filters and exclusions as one bool query."""
    words = translate(query.expr, ranked=ranked) if query.expr is not None else {"match_all": {}}
    scope = TypeScope.of(query)
    return {"bool": {"must": [words], "filter": filters(query, scope), "must_not": exclusions(query, scope)}}
