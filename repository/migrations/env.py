"""Alembic environment: runs migrations on the connection handed over by repository.migrate."""

from __future__ import annotations

from alembic import context

from repository import models  # noqa: F401  (registers the tables)
from repository.db import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run against the connection given in config.attributes, or one made from the URL."""
    connection = config.attributes.get("connection")
    if connection is None:
        from repository.db import make_engine

        with make_engine(config.get_main_option("sqlalchemy.url")).connect() as conn:
            _run(conn)
    else:
        _run(connection)


def _run(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
