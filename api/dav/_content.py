"""Snapshots of documents as one caller sees them (the holder sees their working copy), read in one transaction
and used after it; reading and writing their content."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from api.dav._common import UploadWriter, service
from repository import service as repo
from repository import vault
from repository.config import get_settings
from repository.content import ContentStager, StagedContent
from repository.models import Document, DocumentVersion, User
from repository.runtime import get_runtime
from repository.service.documents import lock_holder
from repository.service.working_copy import working_copy_of


@dataclass(frozen=True)
class Content:
    """One piece of stored content: a version, or a working copy (label None)."""

    label: str | None
    blob_key: str
    sha256: str
    size: int
    media_type: str
    filename: str
    modified: dt.datetime


@dataclass(frozen=True)
class DocInfo:
    """A document as the caller sees it right now."""

    id: str
    title: str
    created_at: dt.datetime
    current: Content
    working: Content | None

    @property
    def shown(self) -> Content:
        """What a GET answers: the caller's working copy if they hold one, else the current version."""
        return self.working or self.current

    @property
    def file_name(self) -> str:
        """The document's name under /dav/documents/<id>/: its current file name."""
        return self.current.filename or "content"


def version_content(v: DocumentVersion) -> Content:
    """A version as content."""
    return Content(v.label, v.blob_key, v.sha256, v.size, v.media_type, v.filename, v.created_at)


def _current_versions(session: Session, documents: list[Document]) -> dict[str, DocumentVersion]:
    found: dict[str, DocumentVersion] = {}
    for i in range(0, len(documents), 300):  # bounded statements, whatever a folder holds
        wanted = or_(*(and_(DocumentVersion.document_id == d.id, DocumentVersion.major == d.current_major,
                            DocumentVersion.minor == d.current_minor) for d in documents[i:i + 300]))
        found.update((v.document_id, v) for v in session.execute(select(DocumentVersion).where(wanted)).scalars())
    return found


def infos(session: Session, user: User, documents: list[Document]) -> list[DocInfo]:
    """Snapshots of documents the caller may read (checked by the caller), with one query for all versions."""
    versions = _current_versions(session, documents)
    out = []
    for d in documents:
        working = working_copy_of(d) if lock_holder(d) == user.id else None
        out.append(DocInfo(
            id=d.id, title=d.title, created_at=d.created_at, current=version_content(versions[d.id]),
            working=Content(None, working.blob_key, working.sha256, working.size, working.media_type,
                            working.filename, working.saved_at) if working else None,
        ))
    return out


def info(session: Session, user: User, document_id: str) -> DocInfo:
    """The snapshot of one readable document (NotFoundError otherwise)."""
    return infos(session, user, [repo.get_document(session, actor=user, document_id=document_id)])[0]


def open_content(session: Session, document_id: str, content: Content) -> BinaryIO:
    """A seekable reader over decrypted content (the data key is looked up now, the blob read as wsgidav reads)."""
    return vault.open_blob(session, get_runtime(), document_id=document_id, blob_key=content.blob_key,
                           size=content.size)


def staging_writer(session: Session, *, document_id: str | None, commit, filename: str) -> UploadWriter:  # noqa: ANN001
    """A writer for a PUT body, encrypting on arrival for an existing document (or a new one, id None)."""
    settings = get_settings()
    sealer = vault.open_sealer(session, get_runtime(), document_id=document_id)
    stager = ContentStager(max_bytes=settings.max_upload_bytes, tmp_dir=settings.tmp_dir, sealer=sealer)
    return UploadWriter(stager, commit, filename)


def stage_copy(document_id: str, content: Content, filename: str, *, target_id: str | None = None) -> StagedContent:
    """Stage a copy of a document's content for another document (a new one when `target_id` is None), encrypted
    under that document's key as it is read."""
    with service(readonly=True) as session:
        runtime = get_runtime()
        chunks = vault.read_blob(session, runtime, document_id=document_id, blob_key=content.blob_key,
                                 size=content.size)
        sealer = vault.open_sealer(session, runtime, document_id=target_id)
    settings = get_settings()
    stager = ContentStager(max_bytes=max(settings.max_upload_bytes, content.size), tmp_dir=settings.tmp_dir,
                           sealer=sealer)
    try:
        for chunk in chunks:
            stager.write(chunk)
    except BaseException:
        stager.discard()
        raise
    return stager.finish(filename)


def put_document(session: Session, user: User, document_id: str, staged: StagedContent) -> None:
    """A PUT over an existing document: the lock holder saves a working copy; anyone else who may write checks
    out and checks in a new minor version in one step (DocumentLockedError if another user holds it)."""
    document = repo.get_document(session, actor=user, document_id=document_id)
    if lock_holder(document) == user.id:
        repo.save_working_copy(session, actor=user, document_id=document_id, content=staged)
        return
    repo.checkout(session, actor=user, document_id=document_id)
    repo.checkin(session, actor=user, document_id=document_id, content=staged, comment="saved over WebDAV")
