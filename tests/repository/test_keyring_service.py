"""The key ring as several processes see it: a rotation by one is picked up by the others."""

from __future__ import annotations

import json

import pytest

from repository.crypto import KeyRing, new_data_key
from repository.errors import IntegrityError


def test_a_running_process_unwraps_keys_rotated_by_another(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "keys" / "ring.json"
    server = KeyRing(path)  # loaded once, like a long-running `postroom serve`
    cli = KeyRing(path)
    new_kek = cli.add_key()  # `postroom keys rotate` in another process
    data_key = new_data_key()
    kek_id, wrapped = cli.wrap(data_key, context="document:1")
    assert kek_id == new_kek
    assert server.unwrap(kek_id, wrapped, context="document:1") == data_key
    assert server.wrap(data_key, context="document:2")[0] == new_kek  # and wraps new keys with it


def test_unknown_key_id_is_an_integrity_error(tmp_path) -> None:  # noqa: ANN001
    ring = KeyRing(tmp_path / "ring.json")
    with pytest.raises(IntegrityError, match="not in the key ring"):
        ring.unwrap("kek-404", b"\0" * 60, context="document:1")


def test_key_ring_file_is_private(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "ring.json"
    KeyRing(path)
    assert path.stat().st_mode & 0o077 == 0
    assert len(json.loads(path.read_text())["keys"]) == 1
