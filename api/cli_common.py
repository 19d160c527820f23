"""What the CLI's command modules share: the error console, failing with an exit code, finding a staff user."""

from __future__ import annotations

import typer
from rich.console import Console
from sqlalchemy import select

from repository.db import transaction
from repository.models import User

console = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    """Print the error and exit with `code`."""
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def staff_user(username: str, code: int = 1) -> User:
    """The staff user named `username` (detached), or exit with `code` naming the --as option."""
    with transaction(readonly=True) as session:
        user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if user is None:
            fail(f"there is no user {username!r}; pass --as USERNAME", code)
        session.expunge(user)
    return user
