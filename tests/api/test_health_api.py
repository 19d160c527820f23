"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations


def test_healthz_is_200(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_200_when_database_and_blob_store_answer(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_metrics_count_requests_by_route(client) -> None:
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = [ln for ln in response.text.splitlines() if ln.startswith("postroom_http_requests_total{")]
    assert any('route="/healthz"' in ln and 'status="200"' in ln for ln in lines), lines


def test_openapi_lists_the_documented_paths(client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    expected = {
        "/api/v1/auth/token": {"post"},
        "/api/v1/customers": {"post"},
        "/api/v1/customers/{customer_id}": {"get"},
        "/api/v1/document-types": {"post"},
        "/api/v1/documents": {"post", "get"},
        "/api/v1/documents/{document_id}": {"get", "patch", "delete"},
        "/api/v1/documents/{document_id}/content": {"get"},
        "/api/v1/documents/{document_id}/versions": {"get"},
        "/api/v1/documents/{document_id}/checkout": {"post", "delete"},
        "/api/v1/documents/{document_id}/checkin": {"post"},
        "/api/v1/documents/{document_id}/restore": {"post"},
        "/api/v1/audit": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))


def test_openapi_documents_bearer_auth(client) -> None:
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert any(s.get("type") == "oauth2" and "password" in s.get("flows", {}) for s in schemes.values())


def test_unknown_path_is_404_problem(client) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
