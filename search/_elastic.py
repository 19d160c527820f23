"""The Elasticsearch backend (POSTROOM_SEARCH_BACKEND=elasticsearch): the index lives behind an alias
(`elasticsearch_index`), whose one index is `<alias>-<utc timestamp>`. A rebuild fills a new index beside it
and swaps the alias in one `_aliases` call, so searches never stop answering.

Writes are bulk requests without refresh (documents become searchable within the index's refresh interval);
each document carries its revision as an external version (`external_gte`), so a late write of an older
revision never overwrites a newer one, whichever process sends it. While a rebuild runs, its index also holds
a second alias (`<alias>-building`) and every write goes to both. Elasticsearch being unreachable raises
SearchUnavailableError: the indexer keeps the documents queued and retries."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError, helpers
from sqlalchemy.orm import Session

from search._elastic_query import MAPPINGS, SETTINGS, facets, search_bodies, source
from search.backend import Hit, IndexDoc, SearchQuery, SearchResult
from search.errors import SearchBackendError, SearchError, SearchUnavailableError

log = logging.getLogger(__name__)
_ALIAS = re.compile(r"[a-z0-9][a-z0-9._-]{0,200}")
_RETRY_STATUS = (429, 502, 503, 504)
_BAD_REQUEST = 400  # the request itself (the query) was refused: the caller's error
_IGNORED_ON_INDEX = (409,)  # a newer revision is already indexed
_IGNORED_ON_DELETE = (404,)  # already gone
_IDS_PER_REQUEST = 1000


def _refusal(status: int, message: str, what: str) -> SearchError:
    """The search error for an answer Elasticsearch refused: overloaded → SearchUnavailableError; a request it
    calls bad (400) → SearchError; any other refusal or failure (401, 403, 5xx...) is on the server's side →
    SearchBackendError."""
    if status in _RETRY_STATUS:
        return SearchUnavailableError(f"Elasticsearch is overloaded ({what}): {message}", retry_after=5)
    if status == _BAD_REQUEST:
        return SearchError(f"Elasticsearch refused {what}: {message} ({status})")
    return SearchBackendError(f"Elasticsearch failed {what}: {message} ({status})")


@contextmanager
def _calls(what: str) -> Iterator[None]:
    """Elasticsearch failures as search errors (unreachable → SearchUnavailableError; refusals: `_refusal`)."""
    try:
        yield
    except TransportError as exc:  # connection refused, reset, timed out
        raise SearchUnavailableError(f"Elasticsearch is unreachable ({what}): {exc}", retry_after=5) from exc
    except ApiError as exc:
        raise _refusal(exc.meta.status, exc.message, what) from exc


class ElasticBackend:
    """Search through an Elasticsearch 9 cluster; see the module docstring."""

    name = "elasticsearch"
    transactional = False

    def __init__(self, settings) -> None:  # noqa: ANN001
        self.alias = settings.elasticsearch_index
        if not _ALIAS.fullmatch(self.alias):
            raise ValueError(f"POSTROOM_ELASTICSEARCH_INDEX {self.alias!r} is not a valid Elasticsearch alias "
                             "(lower-case letters, digits, '.', '_', '-')")
        self.building = f"{self.alias}-building"
        api_key = settings.elasticsearch_api_key.get_secret_value() or None
        self.client = Elasticsearch(settings.elasticsearch_url, api_key=api_key,
                                    request_timeout=settings.elasticsearch_timeout_seconds, max_retries=2,
                                    retry_on_timeout=True, retry_on_status=_RETRY_STATUS)
        self._ready = False
        self.mappings = MAPPINGS["_meta"]["mappings"]  # the live index's `_meta.mappings` (which facet fields)

    # -- the protocol ---------------------------------------------------------------------------------------

    def upsert(self, session: Session, docs: list[IndexDoc]) -> None:
        """Index documents (into the rebuild's index too, while one runs)."""
        if docs:
            self._ensure()
            self.write(self._targets(), docs)

    def delete(self, session: Session, document_ids: list[str]) -> None:
        """Remove documents from the live index (and a rebuild's)."""
        if not document_ids:
            return
        self._ensure()
        targets = self._targets()
        self._bulk(({"_op_type": "delete", "_index": t, "_id": i} for i in document_ids for t in targets),
                   ignore=_IGNORED_ON_DELETE)

    def search(self, session: Session, query: SearchQuery) -> SearchResult:
        """Run a query: one _msearch with the page (hits, snippets) and the facets with the total, or the page
        with its total when no facets are asked for (`_elastic_query.search_bodies`)."""
        if not query.type_ids:
            return SearchResult([], 0, {"document_type": {}, "year": {}, "customer": {}} if query.facets else {})
        self._ensure()
        bodies = search_bodies(query, mappings=self.mappings)
        with self._on_alias("the search"):
            resp = self.client.msearch(index=self.alias, searches=[part for body in bodies for part in ({}, body)])
        if len(resp.get("responses", [])) != len(bodies):
            raise SearchBackendError(f"Elasticsearch answered {len(resp.get('responses', []))} of the "
                                     f"{len(bodies)} searches asked")
        answers = [self._answer(item) for item in resp["responses"]]
        page = answers[0]
        hits = [Hit(document_id=h["_id"], score=float(h.get("_score") or 0.0), snippet=_snippet(h),
                    title=h["_source"].get("title", "")) for h in page["hits"]["hits"]]
        aggs = {name: agg for answer in answers for name, agg in answer.get("aggregations", {}).items()}
        total = answers[-1]["hits"]["total"]["value"]  # the last search counted it (the facets, if asked for)
        return SearchResult(hits, total, facets(aggs) if query.facets else {})

    def _answer(self, item: dict[str, Any]) -> dict[str, Any]:
        """One answer of an _msearch, or the search error its refusal means."""
        if "error" not in item:
            return item
        error, status = item["error"], item.get("status", 500)
        if status == 404:
            raise self._missing()
        if isinstance(error, dict):  # the first root cause says why ("all shards failed" says only that)
            error = (error.get("root_cause") or [error])[0]
        message = error.get("reason", str(error)) if isinstance(error, dict) else str(error)
        raise _refusal(status, message, "the search")

    @contextmanager
    def _on_alias(self, what: str) -> Iterator[None]:
        """As `_calls`, where a 404 means the alias was deleted behind our back."""
        try:
            with _calls(what):
                yield
        except SearchError as exc:
            if isinstance(exc.__cause__, ApiError) and exc.__cause__.meta.status == 404:
                raise self._missing() from exc
            raise

    def _missing(self) -> SearchUnavailableError:
        self._ready = False  # the alias was deleted behind our back: re-create it on the next call
        return SearchUnavailableError(f"the search index {self.alias} is missing; it is re-created empty on the "
                                      "next call: run postroom reindex", retry_after=5)

    def revisions(self, session: Session, document_ids: list[str]) -> dict[str, int]:
        """The indexed revision per document id (a realtime get: no refresh needed)."""
        self._ensure()
        out: dict[str, int] = {}
        for start in range(0, len(document_ids), _IDS_PER_REQUEST):
            with _calls("reading revisions"):
                resp = self.client.mget(index=self.alias, ids=document_ids[start:start + _IDS_PER_REQUEST],
                                        source_includes=["revision"])
            out.update({d["_id"]: d["_source"]["revision"] for d in resp["docs"] if d.get("found")})
        return out

    def count(self, session: Session) -> int:
        """How many documents the live index holds (as of its last refresh)."""
        self._ensure()
        with _calls("counting"):
            return self.client.count(index=self.alias)["count"]

    def rebuild(self, session: Session) -> ElasticRebuild:
        """Create a fresh index beside the live one; `commit` swaps the alias to it."""
        self._ensure()
        return ElasticRebuild(self)

    # -- beyond the protocol ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Make every write so far searchable now (tests; production relies on the refresh interval)."""
        self._ensure()
        with _calls("refresh"):
            self.client.indices.refresh(index=self.alias)

    def live_index(self) -> str:
        """The name of the index the alias points at."""
        self._ensure()
        with _calls("reading the alias"):
            return next(iter(self.client.indices.get_alias(name=self.alias)))

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    # -- internals ------------------------------------------------------------------------------------------

    def create_index(self, *, building: bool) -> str:
        """A new empty index `<alias>-<utc timestamp>`: under the live alias, or the building one (no refresh)."""
        name = f"{self.alias}-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S%f}"
        settings = {**SETTINGS, "refresh_interval": "-1"} if building else SETTINGS
        with _calls("creating an index"):
            self.client.indices.create(index=name, settings=settings, mappings=MAPPINGS,
                                       aliases={self.building if building else self.alias: {}})
        return name

    def _ensure(self) -> None:
        """Create the first index and its alias if there is none (once per process)."""
        if self._ready:
            return
        with _calls("checking the index alias"):
            if not self.client.indices.exists_alias(name=self.alias):
                if self.client.indices.exists(index=self.alias):
                    raise SearchBackendError(f"{self.alias} is an index, not an alias; delete it and run postroom "
                                             "reindex")
                mine = self.create_index(building=False)
                # Two processes may race here: the alias then names two indices; every process keeps the
                # first name, so they agree (the race is the first start's first milliseconds).
                names = sorted(self.client.indices.get_alias(name=self.alias))
                for name in names[1:]:
                    self.client.indices.delete(index=name, ignore_unavailable=True)
                log.info("created Elasticsearch index %s behind alias %s", mine, self.alias)
        with self._on_alias("reading the index mappings"):
            self.mappings = self._add_new_fields()
        self._ready = True

    def _add_new_fields(self) -> int:
        """Add the fields of MAPPINGS that an index made by an earlier version lacks (writes send them and the
        mapping is strict); answer the live index's `_meta.mappings`. An older index's documents get the new
        fields when `postroom reindex` rebuilds it; until then its facets are counted from the fields they have
        (`_elastic_query._aggregations`)."""
        live = set(self.client.indices.get_alias(name=self.alias))
        oldest = MAPPINGS["_meta"]["mappings"]
        for name, mapping in self.client.indices.get_mapping(index=self._targets()).items():
            have = mapping["mappings"].get("properties", {})
            missing = {k: v for k, v in MAPPINGS["properties"].items() if k not in have}
            if missing:
                self.client.indices.put_mapping(index=name, properties=missing)
                log.warning("Elasticsearch index %s predates the fields %s: added them; run postroom reindex so "
                            "that every document has them", name, ", ".join(sorted(missing)))
            if name in live:
                oldest = min(oldest, mapping["mappings"].get("_meta", {}).get("mappings", 1))
        return oldest

    def _targets(self) -> list[str]:
        with _calls("checking for a rebuild"):
            return [self.alias, self.building] if self.client.indices.exists_alias(name=self.building) \
                else [self.alias]

    def write(self, targets: list[str], docs: list[IndexDoc]) -> None:
        """Index documents into each target, versioned by revision."""
        actions = []
        for doc in docs:
            body = source(doc)
            actions += [{"_op_type": "index", "_index": t, "_id": doc.document_id, "version": doc.revision,
                         "version_type": "external_gte", "_source": body} for t in targets]
        self._bulk(actions, ignore=_IGNORED_ON_INDEX)

    def _bulk(self, actions: Iterable[dict[str, Any]], *, ignore: tuple[int, ...]) -> None:
        failed: list[dict[str, Any]] = []
        with _calls("bulk indexing"):
            for ok, item in helpers.streaming_bulk(self.client, actions, chunk_size=500, max_retries=3,
                                                   initial_backoff=1, max_backoff=10, raise_on_error=False,
                                                   yield_ok=False, require_alias=True):
                result = next(iter(item.values()))
                if not ok and result.get("status") not in ignore:
                    failed.append(result)
        if failed:
            if any((f.get("error") or {}).get("type") == "index_not_found_exception" for f in failed):
                self._ready = False  # the alias was deleted behind our back: re-create it on the next call
            first = failed[0]
            detail = f"{len(failed)} of the documents were refused; first: {first.get('_id')}: {first.get('error')}"
            if all(f.get("status") in _RETRY_STATUS for f in failed):
                raise SearchUnavailableError(f"Elasticsearch is overloaded: {detail}", retry_after=5)
            raise SearchBackendError(f"Elasticsearch {detail}")


class ElasticRebuild:
    """A new index filled beside the live one (it also receives live writes under the building alias)."""

    def __init__(self, backend: ElasticBackend) -> None:
        self.backend = backend
        client = backend.client
        with _calls("starting a rebuild"):
            if client.indices.exists_alias(name=backend.building):
                for name in client.indices.get_alias(name=backend.building):  # left by a rebuild that crashed
                    client.indices.delete(index=name)
        self.index = backend.create_index(building=True)

    def upsert(self, session: Session, docs: list[IndexDoc]) -> None:
        """Add documents to the new index."""
        if docs:  # through the building alias: every write names an alias (require_alias)
            self.backend.write([self.backend.building], docs)

    def commit(self, session: Session) -> None:
        """Refresh the new index, point the alias at it in one atomic step, then drop the old index."""
        client, alias = self.backend.client, self.backend.alias
        with _calls("swapping the index alias"):
            client.indices.put_settings(index=self.index, settings={"index": {"refresh_interval": None}})
            client.indices.refresh(index=self.index)
            old = [name for name in client.indices.get_alias(name=alias) if name != self.index]
            client.indices.update_aliases(actions=[
                {"add": {"index": self.index, "alias": alias}},
                {"remove": {"index": self.index, "alias": self.backend.building}},
                *({"remove": {"index": name, "alias": alias}} for name in old)])
            for name in old:
                client.indices.delete(index=name, ignore_unavailable=True)
        self.backend.mappings = MAPPINGS["_meta"]["mappings"]  # the new index has this version's mappings
        log.info("Elasticsearch alias %s now points at %s (dropped %s)", alias, self.index, ", ".join(old) or "-")

    def abort(self, session: Session) -> None:
        """Drop the new index; the live one is untouched."""
        with _calls("dropping the rebuild's index"):
            self.backend.client.indices.delete(index=self.index, ignore_unavailable=True)


def _snippet(hit: dict[str, Any]) -> str:
    """The body fragment with matches, else the title with matches, else the start of the body."""
    found = hit.get("highlight", {})
    body = (found.get("body") or [""])[0]
    title = (found.get("title") or [""])[0]
    best = body if "<mark>" in body or "<mark>" not in title else title
    return " ".join(best.split())
