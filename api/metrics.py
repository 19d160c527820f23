"""Request metrics as a plain ASGI middleware (streaming bodies pass through untouched)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram

REQUESTS = Counter("postroom_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("postroom_http_request_seconds", "Time to the response start", ["method", "route"])


class MetricsMiddleware:
    """Count requests and time them by route template."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def _send(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                route = scope.get("route")
                path = getattr(route, "path", "unmatched")
                LATENCY.labels(scope["method"], path).observe(time.perf_counter() - start)
                REQUESTS.labels(scope["method"], path, str(status["code"])).inc()
            await send(message)

        await self.app(scope, receive, _send)
