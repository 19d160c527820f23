"""Elasticsearch for tests: the node from POSTROOM_TEST_ES_URL (ops/elasticsearch.sh), a fresh alias per test
(or module) whose indices are dropped afterwards, and a closed port for "Elasticsearch is down"."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from repository.config import Settings
from search._elastic import ElasticBackend
from tests.conftest import service_missing

ES_URL = os.environ.get("POSTROOM_TEST_ES_URL", "")


def es_url() -> str:
    """The test node's URL; skips (or fails, when services are required) if it does not answer."""
    if not ES_URL:
        service_missing("elasticsearch", "POSTROOM_TEST_ES_URL is not set")
    client = Elasticsearch(ES_URL, request_timeout=10)
    try:
        client.cluster.health(wait_for_status="yellow", timeout="10s")
    except Exception as exc:  # any failure means the node is not there
        service_missing("elasticsearch", f"cannot reach {ES_URL}: {exc.__class__.__name__}")
    finally:
        client.close()
    return ES_URL


def new_alias() -> str:
    """A unique alias, so tests never see each other's documents."""
    return f"postroom-test-{uuid.uuid4().hex[:12]}"


def drop_indices(alias: str) -> None:
    """Delete every index made for this alias (by name: the node refuses wildcard deletes)."""
    client = Elasticsearch(ES_URL, request_timeout=30)
    try:
        for row in client.cat.indices(index=f"{alias}-*", h="index", format="json"):
            client.indices.delete(index=row["index"], ignore_unavailable=True)
    finally:
        client.close()


def backend_for(url: str, alias: str) -> ElasticBackend:
    """An Elasticsearch backend on this node and alias."""
    return ElasticBackend(Settings(elasticsearch_url=url, elasticsearch_index=alias))


def dead_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def es_backend() -> Iterator[ElasticBackend]:
    """A backend on a fresh alias of the test node."""
    url, alias = es_url(), new_alias()
    backend = backend_for(url, alias)
    yield backend
    backend.close()
    drop_indices(alias)
