"""Database engine, declarative base and the unit-of-work helper that owns each transaction."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import lru_cache

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from repository.write_gate import GatedConnection

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


READONLY = "postroom_readonly"


class Base(DeclarativeBase):
    """Declarative base for every Postroom table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        # Let SQLAlchemy emit BEGIN itself, so writers can take the write lock up front (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # Reads of large tables (the search index) go through the OS page cache instead of copying pages in.
        # (The page cache stays at its default: uncommitted transactions larger than it spill to the WAL, which
        # tests/repository/test_crash_safety.py relies on.)
        cur.execute("PRAGMA mmap_size=268435456")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        # BEGIN IMMEDIATE serialises writers at the start of the transaction; a deferred BEGIN would let two
        # transactions read, then deadlock when both try to upgrade to a write lock. Writers queue at the write
        # gate first (see repository.write_gate). Read-only transactions begin deferred so that, with WAL, they
        # never wait for a writer.
        if conn.get_execution_options().get(READONLY, False):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.connection.dbapi_connection.begin_write()


def make_engine(url: str) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL with Postroom's connection settings."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30,
                                                  "factory": GatedConnection})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@lru_cache
def engine_for(url: str) -> Engine:
    """One shared engine per database URL in this process."""
    return make_engine(url)


def get_engine() -> Engine:
    """The engine for the configured database."""
    from repository.config import get_settings

    settings = get_settings()
    if settings.resolved_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return engine_for(settings.resolved_database_url)


@lru_cache(maxsize=64)
def _sessionmaker(engine: Engine, readonly: bool) -> sessionmaker[Session]:
    bind = engine.execution_options(**{READONLY: True}) if readonly else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


def session_factory(engine: Engine | None = None, *, readonly: bool = False) -> sessionmaker[Session]:
    """A sessionmaker bound to the engine (the configured one by default)."""
    return _sessionmaker(engine or get_engine(), readonly)


@contextlib.contextmanager
def transaction(engine: Engine | None = None, *, readonly: bool = False) -> Iterator[Session]:
    """Open a session, commit when the block succeeds, roll back when it raises.

    A `readonly` transaction only reads: on SQLite it does not take the write lock, and it is never committed
    (closing the session ends it; loaded objects stay readable, detached).
    """
    session = session_factory(engine, readonly=readonly)()
    try:
        yield session
        if not readonly:
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def clear_caches() -> None:
    """Forget cached engines and sessionmakers (after a settings change)."""
    _sessionmaker.cache_clear()
    engine_for.cache_clear()


def is_postgres(session: Session) -> bool:
    """True when the session talks to PostgreSQL."""
    return session.get_bind().dialect.name == "postgresql"
