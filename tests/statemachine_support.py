"""What the Hypothesis state machines share: each example gets its own data directory and a copy of a migrated
SQLite database built once per session, and leaves the environment as it found it."""

from __future__ import annotations

import atexit
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

from repository import runtime
from repository.db import get_engine
from repository.migrate import upgrade

ENV = ("POSTROOM_DATA_DIR", "POSTROOM_KEYRING_PATH", "POSTROOM_DATABASE_URL", "POSTROOM_RUN_WORKER_IN_SERVE",
       "POSTROOM_BLOB_STORE")


def point_at(root: Path) -> None:
    """Point Postroom's settings at a data directory and key ring under `root` (SQLite, files, no worker)."""
    os.environ["POSTROOM_DATA_DIR"] = str(root / "data")
    os.environ["POSTROOM_KEYRING_PATH"] = str(root / "keys" / "keyring.json")
    os.environ["POSTROOM_RUN_WORKER_IN_SERVE"] = "false"
    os.environ.pop("POSTROOM_DATABASE_URL", None)
    os.environ.pop("POSTROOM_BLOB_STORE", None)
    runtime.reset()


def sqlite_template(prefix: str, populate: Callable[[], None]) -> Path:
    """A migrated SQLite database filled by `populate` (no encrypted content: each example has its own key ring),
    copied to a file the examples copy again; removed at exit."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, root, True)
    point_at(root)
    engine = get_engine()
    upgrade(engine)
    populate()
    engine.dispose()
    runtime.reset()
    target = root / "template.db"
    src, dst = sqlite3.connect(root / "data" / "postroom.db"), sqlite3.connect(target)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    return target


def saved_env() -> dict[str, str | None]:
    """The settings variables the machines change, to restore after an example."""
    return {k: os.environ.get(k) for k in ENV}


def restore_env(saved: dict[str, str | None]) -> None:
    """Put the settings variables back as `saved_env` found them."""
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    runtime.reset()
