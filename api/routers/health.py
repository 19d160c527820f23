"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.errors import problem
from repository.db import transaction
from repository.runtime import get_runtime

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz() -> Response:
    """The database and the blob store answer."""
    checks: dict[str, str] = {}
    try:
        with transaction(readonly=True) as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # report, don't raise: this is the health answer
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        get_runtime().store.exists("00000000-0000-0000-0000-000000000000/" + "0" * 64)
        checks["blob_store"] = "ok"
    except Exception as exc:  # report, don't raise
        checks["blob_store"] = f"error: {type(exc).__name__}"
    if all(v == "ok" for v in checks.values()):
        return Response('{"status":"ready"}', media_type="application/json")
    return problem(503, "Not ready", ", ".join(f"{k}: {v}" for k, v in checks.items()), checks=checks)


@router.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
