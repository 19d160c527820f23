"""WebDAV at /dav: authors edit repository documents and correspondence templates in place (wsgidav, mounted in
the FastAPI app through a2wsgi). LOCK checks a document out, PUT saves the working copy, UNLOCK checks it in as
the next minor version; /dav/files/ is a writable folder tree (see api/dav/_provider.py for the namespace)."""

from __future__ import annotations

import logging

from a2wsgi import WSGIMiddleware
from wsgidav.error_printer import ErrorPrinter
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from api.dav._auth import BasicAuthenticator, PostroomDomainController
from api.dav._locks import RepositoryLockManager, RepositoryLockStorage
from api.dav._provider import RepositoryProvider

MOUNT = "/dav"
BLOCK_SIZE = 256 * 1024
THREADS = 16


def create_dav_app() -> WsgiDAVApp:
    """The wsgidav application over the repository."""
    provider = RepositoryProvider()
    config = {
        "mount_path": MOUNT,
        "provider_mapping": {"/": provider},
        "http_authenticator": {
            "domain_controller": PostroomDomainController,
            "accept_basic": True,
            "accept_digest": False,
            "default_to_digest": False,
        },
        "middleware_stack": [ErrorPrinter, BasicAuthenticator, RequestResolver],
        "lock_storage": False,  # replaced below: wsgidav would build an in-memory one
        "property_manager": None,  # dead properties are kept per object by the resources (api/dav/_props.py)
        "block_size": BLOCK_SIZE,
        "verbose": 1,
        "logging": {"enable": False},
        "suppress_version_info": True,
        "add_header_MS_Author_Via": True,
    }
    app = WsgiDAVApp(config)
    # wsgidav logs a traceback for every refused PUT (403, 413, 423: expected answers); real failures are still
    # logged, as 500s, by wsgidav.error_printer.
    logging.getLogger("wsgidav.request_server").setLevel(logging.CRITICAL)
    app.lock_manager = RepositoryLockManager(RepositoryLockStorage(provider))
    provider.set_lock_manager(app.lock_manager)
    return app


def create_dav_asgi() -> WSGIMiddleware:
    """The WebDAV application wrapped for mounting in an ASGI app (its WSGI calls run on a thread pool)."""
    return WSGIMiddleware(create_dav_app(), workers=THREADS)
