"""Many new documents of one type in one transaction: the rules of `create_document`, written in bulk.

Decisions:
- Same checks and the same rows as `create_document` (document, version 1.0, wrapped data key, audit row,
  `document.created` event), but every check runs before anything is written, each table gets one multi-row
  insert and the audit chain's head is locked once. A batch of letters archives a few hundred PDFs per
  transaction this way; one ORM flush per document cost more than the rest of the pipeline.
- Every item is checked and every data key wrapped before any blob is written; then all blobs are encrypted
  and stored with one `put_many`, which makes them durable together (two filesystem syncs for the lot on the
  file store instead of two fsyncs per blob, a few uploads at once on S3), and then the rows are inserted. A
  failure up to the end of this function leaves no blob behind; if the caller's transaction fails later, the
  blobs are orphans that `postroom gc` removes.
- Content comes staged (small letters stay in memory, see `stage_stream`); each item is checked by content
  type and by the document type's validators like a single upload.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from repository import audit, events
from repository.access import can_write, deny_write
from repository.content import StagedContent, detect_media_type
from repository.crypto import encrypt_stream, new_data_key
from repository.errors import DuplicateError, InvalidInputError, RepositoryError
from repository.models import Customer, DataKey, Document, DocumentVersion, User
from repository.runtime import Runtime, get_runtime
from repository.service.document_types import get_type
from repository.service.documents import check_metadata, check_new_content, check_title
from repository.storage import blob_key
from repository.types import new_id, utcnow


@dataclass(frozen=True)
class NewDocument:
    """One document to create: its title, staged content and optional customer, metadata and id."""

    title: str
    content: StagedContent
    customer_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    comment: str = ""
    document_id: str | None = None


def _write_blobs(runtime: Runtime, ids: Sequence[str], items: Sequence[NewDocument]) -> list[tuple[str, str, bytes]]:
    """Encrypt and store every item's content under a fresh data key; (blob key, key id, wrapped key) each."""
    keys = [new_data_key() for _ in items]
    wrapped = [runtime.keyring.wrap(dek, context=f"document:{document_id}")
               for dek, document_id in zip(keys, ids, strict=True)]
    blob_keys = [blob_key(document_id, item.content.sha256) for document_id, item in zip(ids, items, strict=True)]
    stored = runtime.store.put_many((key, encrypt_stream(dek, item.content.chunks()))
                                    for key, dek, item in zip(blob_keys, keys, items, strict=True))
    if not all(stored):
        # A new document's key already holds a blob: left by an earlier attempt with the same id, encrypted
        # under a key nobody has any more. Never reuse or overwrite it.
        _delete_blobs(runtime, [key for key, new in zip(blob_keys, stored, strict=True) if new])
        index = stored.index(False)
        raise DuplicateError(f"content is already stored for document {ids[index]}", item=index)
    return [(key, kek_id, wrap) for key, (kek_id, wrap) in zip(blob_keys, wrapped, strict=True)]


def _delete_blobs(runtime: Runtime, keys: Sequence[str]) -> None:
    for key in keys:
        runtime.store.delete(key)


def create_documents(session: Session, *, actor: User, document_type: str,
                     items: Sequence[NewDocument]) -> list[str]:
    """Store many new documents (version 1.0 each) of one type; returns their ids in the items' order."""
    if not items:
        return []
    runtime = get_runtime()
    doc_type = get_type(session, name=document_type)
    if not can_write(actor, doc_type):
        raise deny_write(actor, "document_type", doc_type.id, f"create documents of type {document_type!r}")
    wanted = {item.customer_id for item in items if item.customer_id is not None}
    if wanted:
        found = set(session.execute(select(Customer.id).where(Customer.id.in_(wanted))).scalars())
        if missing := sorted(wanted - found):
            index = next(i for i, item in enumerate(items) if item.customer_id == missing[0])
            raise InvalidInputError(f"customer {missing[0]} does not exist", field="customer_id", item=index)
    if any(item.content.sealer is not None for item in items):
        raise ValueError("create_documents writes its own blobs: stage the content without a sealer")
    ids = [item.document_id or new_id() for item in items]
    media_types: list[str] = []
    for index, (document_id, item) in enumerate(zip(ids, items, strict=True)):
        try:
            check_title(item.title)
            check_metadata(item.metadata)
            media_type = detect_media_type(item.content, runtime.archive_limits)
            check_new_content(session, doc_type, document_id, media_type, item.content)
        except RepositoryError as exc:
            exc.extra.setdefault("item", index)  # which one, for a caller that sent many
            raise
        media_types.append(media_type)
    blobs = _write_blobs(runtime, ids, items)
    try:
        _insert_rows(session, actor=actor, document_type=document_type, doc_type_id=doc_type.id, ids=ids,
                     items=items, media_types=media_types, blobs=blobs)
    except BaseException:
        _delete_blobs(runtime, [key for key, _kek, _wrapped in blobs])  # new ids: nobody else refers to them
        raise
    return ids


def _insert_rows(session: Session, *, actor: User, document_type: str, doc_type_id: str, ids: Sequence[str],
                 items: Sequence[NewDocument], media_types: Sequence[str],
                 blobs: Sequence[tuple[str, str, bytes]]) -> None:
    now = utcnow()
    session.execute(insert(Document.__table__), [
        {"id": document_id, "title": item.title.strip(), "document_type_id": doc_type_id,
         "customer_id": item.customer_id, "metadata": item.metadata, "state": "active", "current_major": 1,
         "current_minor": 0, "revision": 1, "created_by": actor.id, "created_at": now, "updated_at": now}
        for document_id, item in zip(ids, items, strict=True)])
    session.execute(insert(DocumentVersion.__table__), [
        {"id": new_id(), "document_id": document_id, "major": 1, "minor": 0, "blob_key": key,
         "sha256": item.content.sha256, "size": item.content.size, "media_type": media_type,
         "filename": item.content.filename, "created_by": actor.id, "created_at": now,
         "comment": (item.comment or "")[:2000]}
        for document_id, item, media_type, (key, _k, _w) in zip(ids, items, media_types, blobs, strict=True)])
    session.execute(insert(DataKey.__table__), [
        {"document_id": document_id, "kek_id": kek_id, "wrapped_key": wrapped, "created_at": now}
        for document_id, (_key, kek_id, wrapped) in zip(ids, blobs, strict=True)])
    audit.record_many(session, [
        {"actor": actor.username, "action": "document.created", "object_type": "document", "object_id": document_id,
         "details": {"title": item.title.strip(), "document_type": document_type, "version": "1.0",
                     "sha256": item.content.sha256}}
        for document_id, item in zip(ids, items, strict=True)])
    events.emit_many(session, [
        (events.DOCUMENT_CREATED, {"document_id": document_id, "version": "1.0", "document_type": document_type,
                                   "customer_id": item.customer_id})
        for document_id, item in zip(ids, items, strict=True)])
