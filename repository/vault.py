"""Encrypted content: each document's data key, writing staged content to the blob store, reading it back (as a
stream or as a seekable file: the one place that decrypts a stored blob)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.orm import Session

from repository import audit, events
from repository.content import StagedContent, open_plain
from repository.crypto import SegmentEncryptor, decrypt_range, encrypt_stream, new_data_key
from repository.errors import DocumentStateError, IntegrityError, NotFoundError
from repository.models import DataKey, DocumentVersion
from repository.runtime import Runtime
from repository.storage import blob_key
from repository.types import new_id


def _context(document_id: str) -> str:
    return f"document:{document_id}"


@dataclass(frozen=True)
class KeyHolder:
    """A table outside the repository whose rows keep a data key wrapped by the key ring (`id`, `kek_id` and
    `wrapped_key` columns; the wrap is bound to "<context>:<id>"), so rotation rewraps them and retirement counts
    them."""

    model: Any
    context: str

    def wrap_context(self, row_id: str) -> str:
        """The context a row's key is wrapped under."""
        return _holder_context(self.context, row_id)


def _holder_context(context: str, row_id: str) -> str:
    return f"{context}:{row_id}"


_HOLDERS: dict[str, KeyHolder] = {}


def register_key_holder(model: Any, *, context: str) -> None:
    """Make the key ring's rotation and retirement cover another table of wrapped data keys (at start-up)."""
    _HOLDERS[context] = KeyHolder(model, context)


def wrap_key(runtime: Runtime, data_key: bytes, *, context: str, row_id: str) -> tuple[str, bytes]:
    """Wrap a key holder's data key with the active key-encryption key: (key id, wrapped)."""
    return runtime.keyring.wrap(data_key, context=_holder_context(context, row_id))


def unwrap_key(runtime: Runtime, *, context: str, row_id: str, kek_id: str, wrapped: bytes) -> bytes:
    """A key holder's data key; IntegrityError when its key-encryption key is gone or the wrap was altered."""
    return runtime.keyring.unwrap(kek_id, wrapped, context=_holder_context(context, row_id))


def data_key(session: Session, runtime: Runtime, document_id: str, *, create: bool = False,
             new_document: bool = False) -> bytes:
    """The document's unwrapped data key, created on first use when `create` is set (without looking for
    one first when the caller knows the document is new)."""
    row = None if new_document else session.get(DataKey, document_id)
    if row is None:
        if not create:
            raise IntegrityError(f"document {document_id} has no data key")
        key = new_data_key()
        kek_id, wrapped = runtime.keyring.wrap(key, context=_context(document_id))
        session.add(DataKey(document_id=document_id, kek_id=kek_id, wrapped_key=wrapped))
        return key
    if row.wrapped_key is None:
        raise IntegrityError(f"the data key of document {document_id} was destroyed; its content is unreadable")
    return runtime.keyring.unwrap(row.kek_id, row.wrapped_key, context=_context(document_id))


class Sealer:
    """Encrypts an upload into its document's blob store as it arrives, so content is written once."""

    def __init__(self, runtime: Runtime, document_id: str, dek: bytes, *, new_key: bool) -> None:
        self.document_id = document_id
        self.new_key = new_key
        self._dek = dek
        self._writer = runtime.store.begin(document_id)
        self._enc = SegmentEncryptor(dek)
        self._writer.write(self._enc.header)

    def write(self, chunk: bytes) -> None:
        """Encrypt and append plaintext."""
        for segment in self._enc.update(chunk):
            self._writer.write(segment)

    def close(self) -> None:
        """Seal the final segment."""
        self._writer.write(self._enc.finalize())

    def read_plain(self, size: int, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Decrypt what was sealed (for checks before it is committed)."""
        return decrypt_range(self._dek, self._writer.read, size, start, end)

    def wrapped(self, runtime: Runtime) -> DataKey:
        """The data-key row for a new document's key."""
        kek_id, wrapped = runtime.keyring.wrap(self._dek, context=_context(self.document_id))
        return DataKey(document_id=self.document_id, kek_id=kek_id, wrapped_key=wrapped)

    def commit(self, key: str) -> None:
        """Make the sealed blob durable under its content key."""
        self._writer.commit(key)

    def abort(self) -> None:
        """Drop the sealed blob unless it was committed."""
        self._writer.abort()


def open_sealer(session: Session, runtime: Runtime, *, document_id: str | None) -> Sealer:
    """A sealer for a new document (fresh id and data key) or for a new version of an existing one."""
    if document_id is None:
        return Sealer(runtime, new_id(), new_data_key(), new_key=True)
    return Sealer(runtime, document_id, data_key(session, runtime, document_id), new_key=False)


def store_content(
    session: Session, runtime: Runtime, *, document_id: str, staged: StagedContent, new_document: bool = False
) -> str:
    """Encrypt staged content into the blob store under the document's key; returns the blob key."""
    key = blob_key(document_id, staged.sha256)
    sealer = staged.sealer
    if isinstance(sealer, Sealer):
        if sealer.document_id != document_id:
            raise ValueError("content was sealed for another document")
        if sealer.new_key and (new_document or session.get(DataKey, document_id) is None):
            session.add(sealer.wrapped(runtime))
        sealer.commit(key)
        return key
    if new_document or not runtime.store.refresh(key):
        dek = data_key(session, runtime, document_id, create=True, new_document=new_document)
        runtime.store.put(key, encrypt_stream(dek, staged.chunks()))
    return key


def _plain_range(
    session: Session, runtime: Runtime, document_id: str, blob_key: str, size: int
) -> Callable[[int, int | None], Iterator[bytes]]:
    """read_range(start, end) over one of a document's blobs; the data key is looked up now."""
    dek = data_key(session, runtime, document_id)
    stored = functools.partial(runtime.store.open, blob_key)

    def read_range(start: int, end: int | None) -> Iterator[bytes]:
        return decrypt_range(dek, stored, size, start, end)

    return read_range


def read_blob(
    session: Session, runtime: Runtime, *, document_id: str, blob_key: str, size: int, start: int = 0,
    end: int | None = None,
) -> Iterator[bytes]:
    """Stream the plaintext of one of a document's blobs (a version's or a working copy's), or the byte range
    [start, end) of it. The data key is looked up now, so the stream may be read after the session has ended;
    access must already be checked."""
    return _plain_range(session, runtime, document_id, blob_key, size)(start, end)


def open_blob(session: Session, runtime: Runtime, *, document_id: str, blob_key: str, size: int) -> BinaryIO:
    """A buffered, seekable plaintext file over one of a document's blobs, decrypting only the segments read
    (validators, WebDAV GETs). Like read_blob, it may be read after the session has ended."""
    return open_plain(_plain_range(session, runtime, document_id, blob_key, size), size)


def read_content(
    session: Session, *, runtime: Runtime, version: DocumentVersion, start: int = 0, end: int | None = None
) -> Iterator[bytes]:
    """Stream the plaintext of a version, or the byte range [start, end) of it."""
    return read_blob(session, runtime, document_id=version.document_id, blob_key=version.blob_key,
                     size=version.size, start=start, end=end)


_REWRAP_CHUNK = 1000


def _rewrap(session: Session, runtime: Runtime, model: Any, id_column: Any, context: Callable[[str], str],
            new_kek: str) -> int:
    """Rewrap one table's live data keys with the active key, a chunk of rows at a time (keyset paging, one
    executemany per chunk: never the whole table in memory); returns how many."""
    table = model.__table__
    write = (update(table).where(table.c[id_column.key] == bindparam("row_id"))
             .values(kek_id=bindparam("new_kek_id"), wrapped_key=bindparam("new_wrapped")))
    count, after = 0, ""
    while True:
        rows = session.execute(select(id_column, model.kek_id, model.wrapped_key)
                               .where(model.wrapped_key.is_not(None), id_column > after)
                               .order_by(id_column).limit(_REWRAP_CHUNK)).all()
        if not rows:
            return count
        changes = []
        for row_id, kek_id, wrapped in rows:
            if kek_id == new_kek:
                continue
            plain = runtime.keyring.unwrap(kek_id, wrapped, context=context(row_id))
            kid, rewrapped = runtime.keyring.wrap(plain, context=context(row_id))
            changes.append({"row_id": row_id, "new_kek_id": kid, "new_wrapped": rewrapped})
        if changes:
            session.connection().execute(write, changes)
        count += len(changes)
        after = rows[-1][0]


def rotate_keys(session: Session, *, runtime: Runtime, actor: str) -> tuple[str, int]:
    """Add a new key-encryption key and rewrap every live data key with it (and those of registered key
    holders); blobs are untouched. Audited, and announced as an event."""
    new_kek = runtime.keyring.add_key()
    count = _rewrap(session, runtime, DataKey, DataKey.document_id, _context, new_kek)
    for holder in _HOLDERS.values():
        count += _rewrap(session, runtime, holder.model, holder.model.id, holder.wrap_context, new_kek)
    audit.record(session, actor=actor, action="keys.rotated", object_type="keyring", object_id=new_kek,
                 details={"rewrapped": count})
    events.emit(session, events.KEYS_ROTATED, {"kek_id": new_kek, "rewrapped": count})
    return new_kek, count


def key_usage(session: Session, *, runtime: Runtime) -> list[tuple[str, bool, int]]:
    """Each key-encryption key in the ring: (id, whether it is active, how many live data keys it wraps, the
    registered holders' included)."""
    counts: dict[str, int] = {}
    for model in (DataKey, *(h.model for h in _HOLDERS.values())):
        for kid, n in session.execute(select(model.kek_id, func.count()).where(model.wrapped_key.is_not(None))
                                      .group_by(model.kek_id)):
            counts[kid] = counts.get(kid, 0) + n
    ring = runtime.keyring
    ring.reload()
    return [(kid, kid == ring.active_id, counts.get(kid, 0)) for kid in ring.key_ids()]


def retire_key(session: Session, *, runtime: Runtime, kek_id: str, actor: str) -> None:
    """Remove a key-encryption key that wraps no live data key any more (after `rotate_keys`) from the ring:
    a database backup that still holds data keys wrapped by it (say, of documents destroyed since) becomes
    unreadable with the ring. Audited. Refuses the active key and a key still in use."""
    ring = runtime.keyring
    ring.reload()
    if kek_id not in ring.key_ids():
        raise NotFoundError(f"key-encryption key {kek_id} is not in the key ring")
    if kek_id == ring.active_id:
        raise DocumentStateError(f"{kek_id} is the active key; run `postroom keys rotate` first")
    models = (DataKey, *(h.model for h in _HOLDERS.values()))
    if session.get_bind().dialect.name == "postgresql":
        # Data keys being written now commit before the count (and new ones wait): none slips past it.
        for model in models:
            session.execute(text(f"LOCK TABLE {model.__tablename__} IN SHARE MODE"))
    in_use = sum(session.execute(select(func.count()).select_from(model).where(
        model.kek_id == kek_id, model.wrapped_key.is_not(None))).scalar_one() for model in models)
    if in_use:
        raise DocumentStateError(f"{kek_id} still wraps {in_use} data keys; run `postroom keys rotate` first")
    audit.record(session, actor=actor, action="keys.retired", object_type="keyring", object_id=kek_id)
    session.flush()
    ring.remove_key(kek_id)  # last: a failure above leaves the ring whole
