"""Shared fixtures: a migrated database (SQLite, or PostgreSQL with the `postgres` marker), a blob store
(filesystem, or MinIO with the `minio` marker), users with tokens, and an API client.

A service test is skipped only when its service cannot be reached, and the run says so loudly; with
POSTROOM_REQUIRE_SERVICES=1 (CI) an unreachable service fails the test instead.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import create_engine, text

from repository import identity, runtime
from repository.db import get_engine, transaction
from repository.migrate import upgrade
from repository.models import User

PG_URL = os.environ.get("POSTROOM_TEST_DATABASE_URL", "")
S3_ENDPOINT = os.environ.get("POSTROOM_TEST_S3_ENDPOINT", "")
S3_ACCESS = os.environ.get("POSTROOM_TEST_S3_ACCESS_KEY", "")
S3_SECRET = os.environ.get("POSTROOM_TEST_S3_SECRET_KEY", "")
REQUIRE = os.environ.get("POSTROOM_REQUIRE_SERVICES") == "1"
PASSWORD = "correct-horse-battery"
_unavailable: dict[str, str] = {}


def service_missing(name: str, why: str) -> None:
    """Skip (or, when services are required, fail) a test whose real service is unreachable."""
    _unavailable[name] = why
    if REQUIRE:
        pytest.fail(f"{name} is required (POSTROOM_REQUIRE_SERVICES=1) but unavailable: {why}")
    pytest.skip(f"{name} unavailable: {why}")


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    """Say loudly which real services were missing."""
    for name, why in _unavailable.items():
        terminalreporter.write_line(f"!!! {name.upper()} TESTS SKIPPED: {why} (start it with ops/services.sh start)",
                                    red=True, bold=True)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated PostgreSQL template database; each test clones it."""
    if not PG_URL:
        service_missing("postgres", "POSTROOM_TEST_DATABASE_URL is not set")
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any connection failure means the service is not there
        service_missing("postgres", f"cannot connect: {exc.__class__.__name__}")
    name = f"postroom_tmpl_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = create_engine(url)
    upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _pg_database(template: str) -> Iterator[str]:
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"postroom_t_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        runtime.reset()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request, tmp_path) -> Iterator[str]:  # noqa: ANN001
    """The database URL to test against: SQLite in the data dir, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield ""
        return
    template = request.getfixturevalue("pg_template")
    yield from _pg_database(template)


@pytest.fixture
def sqlite_only() -> str:
    """For tests that only need the embedded default."""
    return ""


def _s3_env(monkeypatch) -> None:  # noqa: ANN001
    if not S3_ENDPOINT:
        service_missing("minio", "POSTROOM_TEST_S3_ENDPOINT is not set")
    from minio import Minio

    client = Minio(S3_ENDPOINT, access_key=S3_ACCESS, secret_key=S3_SECRET, secure=False)
    try:
        client.list_buckets()
    except Exception as exc:  # any failure means the service is not there
        service_missing("minio", f"cannot connect: {exc.__class__.__name__}")
    monkeypatch.setenv("POSTROOM_BLOB_STORE", "s3")
    monkeypatch.setenv("POSTROOM_S3_ENDPOINT", S3_ENDPOINT)
    monkeypatch.setenv("POSTROOM_S3_ACCESS_KEY", S3_ACCESS)
    monkeypatch.setenv("POSTROOM_S3_SECRET_KEY", S3_SECRET)
    monkeypatch.setenv("POSTROOM_S3_BUCKET", f"postroom-test-{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.minio)])
def blob_backend(request, monkeypatch) -> str:  # noqa: ANN001
    """The blob store to test against: the filesystem, or a fresh MinIO bucket."""
    if request.param == "s3":
        _s3_env(monkeypatch)
    return request.param


def configure(monkeypatch, tmp_path, database_url: str = "") -> None:  # noqa: ANN001
    """Point Postroom's settings at a temp data dir and key ring, and the given database."""
    monkeypatch.setenv("POSTROOM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("POSTROOM_KEYRING_PATH", str(tmp_path / "keys" / "keyring.json"))
    monkeypatch.setenv("POSTROOM_RUN_WORKER_IN_SERVE", "false")
    if database_url:
        monkeypatch.setenv("POSTROOM_DATABASE_URL", database_url)
    else:
        monkeypatch.delenv("POSTROOM_DATABASE_URL", raising=False)
    runtime.reset()


@pytest.fixture
def repo(monkeypatch, tmp_path, database) -> Iterator[None]:  # noqa: ANN001
    """A migrated repository on the parametrised database, with the filesystem blob store."""
    configure(monkeypatch, tmp_path, database)
    if not database:
        upgrade(get_engine())
    yield
    get_engine().dispose()
    runtime.reset()


@pytest.fixture
def repo_any_store(monkeypatch, tmp_path, blob_backend) -> Iterator[str]:  # noqa: ANN001
    """A migrated SQLite repository on the parametrised blob store."""
    configure(monkeypatch, tmp_path)
    upgrade(get_engine())
    yield blob_backend
    get_engine().dispose()
    runtime.reset()


@dataclass
class Account:
    """A user for tests, with a bearer token."""

    user: User
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """Authorization header for this user."""
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def make_user():  # noqa: ANN201
    """Create users with given roles: make_user("alice", "author")."""

    def _make(username: str, *roles: str) -> Account:
        from repository.config import get_settings

        with transaction() as session:
            user = identity.create_user(session, username=username, password=PASSWORD, roles=list(roles),
                                        actor="test")
            session.flush()
            session.expunge(user)
        token, _ = identity.issue_token(user, get_settings())
        return Account(user, token)

    return _make


@pytest.fixture
def client(repo):  # noqa: ANN001, ANN201
    """An HTTP client on the ASGI app, on the parametrised database."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(run_worker_thread=False), raise_server_exceptions=False) as c:
        yield c
