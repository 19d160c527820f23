"""The FastAPI application: routers, error mapping, metrics, and the in-process outbox worker."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from api import dav
from api.errors import install_error_handlers, problem, register_error_mapping
from api.metrics import MetricsMiddleware
from api.routers import (
    audit,
    auth,
    batches,
    customers,
    disposition,
    document_types,
    documents,
    erasure,
    health,
    letters,
    message_templates,
    reports,
    templates,
    webhooks,
)
from api.routers import history as history_routes
from api.routers import holds as hold_routes
from api.routers import matters as matter_routes
from api.routers import portal as portal_routes
from api.routers import print_runs as print_run_routes
from api.routers import records as records_routes
from api.routers import search as search_routes
from correspondence import events as correspondence_events
from output import events as output_events
from output.compose import reset_pool
from output.errors import PoolBusyError, ServiceUnavailableError
from output.service import run_dispatcher
from output.service.batches import run_batches
from records import events as records_events
from records.jobs import start_scheduler as start_records_scheduler
from records.jobs import stop_scheduler as stop_records_scheduler
from repository.config import get_settings
from repository.db import get_engine
from repository.events import run_worker
from search import events as search_events
from search.errors import QuerySyntaxError, SearchBackendError, SearchUnavailableError
from search.indexing import run_indexer
from search.matters.jobs import run_exporter

# Busy or missing converters (output/compose/) answer 503 with Retry-After.
register_error_mapping([(PoolBusyError, 503), (ServiceUnavailableError, 503)])
# A malformed search query is a bad request (the problem says where); a backend that is down answers 503, one
# that fails on its side 502 (the detail says no more).
register_error_mapping([(QuerySyntaxError, 400), (SearchUnavailableError, 503), (SearchBackendError, 502)])


class HeaderLimitMiddleware:
    """Refuse a request whose request line and headers exceed POSTROOM_MAX_HEADER_BYTES with 431, whichever HTTP
    server runs the app (uvicorn's httptools parser, its default, has no such limit of its own)."""

    def __init__(self, app, max_bytes: int) -> None:  # noqa: ANN001
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            size += sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > self.max_bytes:
                response = problem(431, "Request header fields too large",
                                   f"the request line and headers are {size} bytes; the limit is {self.max_bytes}; "
                                   "send less in headers and the URL")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def register_subscribers() -> None:
    """Each domain package registers its outbox subscribers and content checks here at start-up."""
    correspondence_events.register()
    output_events.register()
    records_events.register()
    search_events.register()


def start_background(stop: threading.Event, *, dispatch: bool = True, batches: bool = True,
                     records: bool = True) -> list[threading.Thread]:
    """Start the outbox worker and, if asked, the dispatcher (letters leave through the ledger) and the batch
    runner, each on a daemon thread looping until `stop` is set, and the records scheduler (disposition sweep
    and execution)."""
    settings = get_settings()
    loops: list[tuple[str, Callable[..., None], dict[str, Any]]] = [
        ("outbox-worker", run_worker, {"poll_seconds": settings.outbox_poll_seconds,
                                       "max_attempts": settings.outbox_max_attempts}),
        ("search-indexer", run_indexer, {"poll_seconds": settings.outbox_poll_seconds}),
        ("export-builder", run_exporter, {"poll_seconds": settings.outbox_poll_seconds})]
    if dispatch:
        loops.append(("dispatcher", run_dispatcher, {"poll_seconds": settings.dispatch_poll_seconds}))
    if batches:
        loops.append(("batch-runner", run_batches, {"poll_seconds": settings.batch_poll_seconds}))
    threads = [threading.Thread(target=loop, args=(get_engine(), stop), kwargs=kwargs, name=name, daemon=True)
               for name, loop, kwargs in loops]
    for thread in threads:
        thread.start()
    if records:
        start_records_scheduler()
    return threads


def stop_background(stop: threading.Event, threads: list[threading.Thread]) -> None:
    """Stop the background loops, letting each finish what it is doing (a batch its chunks in flight)."""
    stop.set()
    stop_records_scheduler()
    for thread in threads:
        thread.join(timeout=30)


def create_app(*, run_worker_thread: bool | None = None) -> FastAPI:
    """Build the application; the outbox worker runs in a thread unless disabled."""
    settings = get_settings()
    start_worker = settings.run_worker_in_serve if run_worker_thread is None else run_worker_thread
    register_subscribers()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):  # noqa: ANN202
        stop = threading.Event()
        threads = start_background(stop, dispatch=settings.run_dispatcher_in_serve,
                                   batches=settings.run_batches_in_serve) if start_worker else []
        try:
            yield
        finally:
            stop_background(stop, threads)
            if start_worker:
                # The serving process owns its LibreOffice workers (they run in their own sessions and would
                # outlive it); in-process test apps share one pool across app instances instead.
                reset_pool()

    app = FastAPI(title="Postroom", version="0.1.0", lifespan=lifespan,
                  description="Document repository and customer correspondence service")
    install_error_handlers(app)
    for module in (auth, customers, document_types, documents, audit, health):
        app.include_router(module.router)
    app.include_router(templates.templates_router)
    app.include_router(templates.blocks_router)
    app.include_router(letters.router)
    app.include_router(letters.tracking_router)
    app.include_router(message_templates.router)  # email and SMS wording sent with letters
    app.include_router(batches.router)  # letter batches (the runner makes their letters in the background)
    app.include_router(print_run_routes.router)  # print house runs (admin)
    app.include_router(portal_routes.router)  # customer portal accounts and inbox
    app.include_router(reports.router)
    app.include_router(webhooks.router)  # provider callbacks: HMAC-signed, no bearer token
    app.include_router(search_routes.router)
    app.include_router(history_routes.router)  # a customer's history (documents, letters, delivery events)
    app.include_router(records_routes.router)  # file plan, declaration, reclassification, business events
    app.include_router(erasure.router)  # erasure requests (GDPR Art. 17; records managers)
    app.include_router(hold_routes.router)  # legal holds (records managers)
    app.include_router(matter_routes.router)  # e-discovery matters, holds from searches, production exports
    app.include_router(disposition.router)  # disposition batches: sweep, review, approve (records managers)
    app.mount(dav.MOUNT, dav.create_dav_asgi())  # WebDAV: edit documents and templates in place
    app.add_middleware(HeaderLimitMiddleware, max_bytes=settings.max_header_bytes)
    app.add_middleware(MetricsMiddleware)
    return app
