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


def test_a_key_is_retired_only_once_nothing_live_is_wrapped_by_it(repo, make_user) -> None:  # noqa: ANN001
    from repository import service, vault
    from repository.db import transaction
    from repository.errors import DocumentStateError, NotFoundError
    from repository.models import DataKey
    from repository.runtime import get_runtime
    from repository.service.destruction import destroy_document
    from tests.repository.helpers import staged

    author = make_user("alice", "author").user
    runtime = get_runtime()
    with transaction() as s:
        kept = service.create_document(s, actor=author, title="kept", document_type="general",
                                       content=staged(b"kept")).id
        shredded = service.create_document(s, actor=author, title="gone", document_type="general",
                                           content=staged(b"gone")).id
    old = runtime.keyring.active_id
    with transaction() as s:
        destroy_document(s, document_id=shredded, actor="test", reason="destroy")
    runtime.keyring.add_key()
    with pytest.raises(DocumentStateError, match="still wraps 1 data keys"), transaction() as s:
        vault.retire_key(s, runtime=runtime, kek_id=old, actor="test")  # the shredded key does not count
    with transaction() as s:
        vault.rotate_keys(s, runtime=runtime, actor="test")
    with transaction(readonly=True) as s:
        assert [(kid, n) for kid, _active, n in vault.key_usage(s, runtime=runtime) if kid == old] == [(old, 0)]
    with transaction() as s:
        vault.retire_key(s, runtime=runtime, kek_id=old, actor="test")
    assert old not in runtime.keyring.key_ids()
    with pytest.raises(NotFoundError), transaction() as s:
        vault.retire_key(s, runtime=runtime, kek_id=old, actor="test")
    with transaction(readonly=True) as s:
        assert s.get(DataKey, shredded).kek_id == old and s.get(DataKey, shredded).wrapped_key is None
        version = service.get_version(s, actor=author, document_id=kept)
        assert b"".join(service.read_version(s, version=version)) == b"kept"


def test_rotation_rewraps_every_key_a_chunk_at_a_time(repo, make_user, monkeypatch) -> None:  # noqa: ANN001
    from repository import service, vault
    from repository.db import transaction
    from repository.models import DataKey
    from repository.runtime import get_runtime
    from tests.repository.helpers import staged

    monkeypatch.setattr(vault, "_REWRAP_CHUNK", 2)  # five documents: three chunks
    author = make_user("alice", "author").user
    with transaction() as s:
        ids = [service.create_document(s, actor=author, title=f"doc {i}", document_type="general",
                                       content=staged(f"content {i}".encode())).id for i in range(5)]
    runtime = get_runtime()
    with transaction() as s:
        new_kek, count = vault.rotate_keys(s, runtime=runtime, actor="test")
    assert count == 5
    with transaction(readonly=True) as s:
        assert {k.kek_id for k in s.query(DataKey)} == {new_kek}
        for i, document_id in enumerate(ids):
            version = service.get_version(s, actor=author, document_id=document_id)
            assert b"".join(service.read_version(s, version=version)) == f"content {i}".encode()
