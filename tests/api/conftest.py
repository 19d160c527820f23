"""Accounts most API tests need, on the parametrised database."""

from __future__ import annotations

import pytest


@pytest.fixture
def admin(client, make_user):  # noqa: ANN001, ANN201
    """An admin with a token."""
    return make_user("root", "admin")


@pytest.fixture
def author(client, make_user):  # noqa: ANN001, ANN201
    """An author with a token."""
    return make_user("alice", "author")
