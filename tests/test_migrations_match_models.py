"""The Alembic migrations build exactly the tables the models describe, on SQLite and PostgreSQL: a model
changed without a migration (or the reverse) fails here, not in production."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import correspondence.models  # noqa: F401  (registers its tables)
import output.models  # noqa: F401
import records.models  # noqa: F401
import repository.models  # noqa: F401
import repository.portal_models  # noqa: F401
import search.matters.models  # noqa: F401
import search.models  # noqa: F401
import search.timeline.models  # noqa: F401
from repository.db import Base, get_engine

pytestmark = pytest.mark.usefixtures("repo")


def _modelled(name, type_, _parent) -> bool:  # noqa: ANN001
    # The search backends' own index tables (FTS5 and its shadow tables, the PostgreSQL tsvector table) are
    # created by migration 0010 for one dialect each and are not models.
    return not (type_ == "table" and (name or "").startswith(("search_fts", "search_pg")))


def test_migrated_schema_matches_the_models() -> None:
    with get_engine().connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": _modelled})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
