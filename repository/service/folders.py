"""Folders: a tree of names for documents (WebDAV shows it under /dav/files/). A document's name in a folder is
its title; folders hold ordinary `general` documents, so who may read or change the tree follows that type."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from repository import audit, events
from repository.access import can_read, can_write, deny_read, deny_write
from repository.content import StagedContent
from repository.errors import DocumentLockedError, DuplicateError, InvalidInputError, NotFoundError
from repository.models import ROOT_FOLDER_ID, Document, DocumentType, Folder, User
from repository.service.document_types import get_type
from repository.service.documents import ACTIVE, create_document, lock_holder, writable_document
from repository.types import utcnow

FOLDER_TYPE = "general"
FOLDER_CREATED = "folder.created"
FOLDER_MOVED = "folder.moved"
FOLDER_DELETED = "folder.deleted"
DOCUMENT_FILED = "document.filed"
MAX_NAME = 255


@dataclass(frozen=True)
class Listing:
    """A folder's subfolders and the active documents filed in it (that the caller may read), by name."""

    folders: list[Folder]
    documents: list[Document]


def check_name(name: str) -> str:
    """A folder or file name: 1-255 characters, no slash, no control characters, not "." or ".."."""
    if not name or len(name) > MAX_NAME or name in (".", "..") or "/" in name or "\\" in name:
        raise InvalidInputError(f"{name[:40]!r} is not a usable name: 1-{MAX_NAME} characters without slashes",
                                field="name")
    if any(unicodedata.category(ch)[0] == "C" for ch in name):
        raise InvalidInputError("a name must not contain control characters", field="name")
    return name


def _folder_type(session: Session) -> DocumentType:
    return get_type(session, name=FOLDER_TYPE)


def get_folder(session: Session, *, actor: User, folder_id: str) -> Folder:
    """A folder the caller may see (anyone who may read `general` documents); NotFoundError otherwise."""
    folder = session.get(Folder, folder_id)
    if folder is None:
        raise NotFoundError(f"folder {folder_id} not found")
    if not can_read(actor, _folder_type(session)):
        raise deny_read(actor, "folder", folder_id)
    return folder


def _writable_folder(session: Session, actor: User, folder_id: str, what: str) -> Folder:
    folder = get_folder(session, actor=actor, folder_id=folder_id)
    if not can_write(actor, _folder_type(session)):
        raise deny_write(actor, "folder", folder_id, what)
    return folder


def _readable_type_ids(session: Session, actor: User) -> list[str]:
    return [t.id for t in session.execute(select(DocumentType)).scalars() if can_read(actor, t)]


def find_child(session: Session, *, actor: User, folder_id: str, name: str) -> Folder | Document | None:
    """The subfolder or readable active document called `name` in a folder the caller may see, or None."""
    get_folder(session, actor=actor, folder_id=folder_id)
    sub = session.execute(
        select(Folder).where(Folder.parent_id == folder_id, Folder.name == name)
    ).scalar_one_or_none()
    if sub is not None:
        return sub
    return session.execute(
        select(Document).where(Document.folder_id == folder_id, Document.title == name, Document.state == ACTIVE,
                               Document.document_type_id.in_(_readable_type_ids(session, actor)))
    ).scalar_one_or_none()


def list_children(session: Session, *, actor: User, folder_id: str) -> Listing:
    """What a folder holds, by name."""
    get_folder(session, actor=actor, folder_id=folder_id)
    folders = session.execute(select(Folder).where(Folder.parent_id == folder_id).order_by(Folder.name)).scalars()
    documents = session.execute(
        select(Document)
        .where(Document.folder_id == folder_id, Document.state == ACTIVE,
               Document.document_type_id.in_(_readable_type_ids(session, actor)))
        .order_by(Document.title)
    ).scalars()
    return Listing(list(folders), list(documents))


def _name_taken(session: Session, folder_id: str, name: str, *, ignore: str | None = None) -> bool:
    folder = session.execute(
        select(Folder.id).where(Folder.parent_id == folder_id, Folder.name == name, Folder.id != (ignore or ""))
    ).first()
    document = session.execute(
        select(Document.id).where(Document.folder_id == folder_id, Document.title == name, Document.state == ACTIVE,
                                  Document.id != (ignore or ""))
    ).first()
    return folder is not None or document is not None


def _refuse_taken(session: Session, folder_id: str, name: str, *, ignore: str | None = None) -> None:
    if _name_taken(session, folder_id, name, ignore=ignore):
        raise DuplicateError(f"the folder already holds something called {name!r}", name=name)


def create_folder(session: Session, *, actor: User, parent_id: str, name: str) -> Folder:
    """Create a subfolder (for those who may write `general` documents); DuplicateError if the name is taken."""
    _writable_folder(session, actor, parent_id, "create folders")
    check_name(name)
    _refuse_taken(session, parent_id, name)
    folder = Folder(parent_id=parent_id, name=name, created_by=actor.id)
    session.add(folder)
    session.flush()
    audit.record(session, actor=actor.username, action="folder.created", object_type="folder", object_id=folder.id,
                 details={"parent_id": parent_id, "name": name})
    events.emit(session, FOLDER_CREATED, {"folder_id": folder.id, "parent_id": parent_id})
    return folder


def _ancestors(session: Session, folder_id: str) -> list[str]:
    chain, current = [], session.get(Folder, folder_id)
    while current is not None:
        chain.append(current.id)
        current = session.get(Folder, current.parent_id) if current.parent_id else None
    return chain


def move_folder(session: Session, *, actor: User, folder_id: str, parent_id: str, name: str) -> Folder:
    """Rename a folder and/or move it under another parent (not into itself); its contents go with it."""
    folder = _writable_folder(session, actor, folder_id, "move folders")
    if folder.id == ROOT_FOLDER_ID:
        raise InvalidInputError("the root folder cannot be moved")
    _writable_folder(session, actor, parent_id, "move folders")
    check_name(name)
    if folder_id in _ancestors(session, parent_id):
        raise InvalidInputError("a folder cannot be moved into itself or one of its subfolders")
    _refuse_taken(session, parent_id, name, ignore=folder_id)
    old = {"parent_id": folder.parent_id, "name": folder.name}
    folder.parent_id, folder.name = parent_id, name
    session.flush()
    audit.record(session, actor=actor.username, action="folder.moved", object_type="folder", object_id=folder_id,
                 details={"old": old, "new": {"parent_id": parent_id, "name": name}})
    events.emit(session, FOLDER_MOVED, {"folder_id": folder_id, "parent_id": parent_id})
    return folder


def delete_folder(session: Session, *, actor: User, folder_id: str) -> None:
    """Delete an empty folder (no subfolders, no active documents); documents of it in the trash lose the folder."""
    folder = _writable_folder(session, actor, folder_id, "delete folders")
    if folder.id == ROOT_FOLDER_ID:
        raise InvalidInputError("the root folder cannot be deleted")
    busy = session.execute(select(Folder.id).where(Folder.parent_id == folder_id)).first() or session.execute(
        select(Document.id).where(Document.folder_id == folder_id, Document.state == ACTIVE)
    ).first()
    if busy:
        raise InvalidInputError(f"folder {folder.name!r} is not empty; delete what it holds first")
    session.execute(update(Document).where(Document.folder_id == folder_id).values(folder_id=None)
                    .execution_options(synchronize_session=False))
    session.delete(folder)
    session.flush()
    audit.record(session, actor=actor.username, action="folder.deleted", object_type="folder", object_id=folder_id,
                 details={"parent_id": folder.parent_id, "name": folder.name})
    events.emit(session, FOLDER_DELETED, {"folder_id": folder_id})


def create_filed_document(
    session: Session, *, actor: User, folder_id: str, name: str, content: StagedContent, comment: str = ""
) -> Document:
    """A new `general` document called `name` in a folder (version 1.0)."""
    _writable_folder(session, actor, folder_id, "add documents to folders")
    check_name(name)
    _refuse_taken(session, folder_id, name)
    document = create_document(session, actor=actor, title=name, document_type=FOLDER_TYPE, content=content,
                               comment=comment)
    document.folder_id = folder_id
    session.flush()
    audit.record(session, actor=actor.username, action="document.filed", object_type="document",
                 object_id=document.id, details={"folder_id": folder_id, "name": name})
    events.emit(session, DOCUMENT_FILED, {"document_id": document.id, "folder_id": folder_id})
    return document


def file_document(session: Session, *, actor: User, document_id: str, folder_id: str, name: str) -> Document:
    """File a document in a folder under a name (its title), or rename it there; refused while another user has
    it checked out."""
    _writable_folder(session, actor, folder_id, "file documents in folders")
    document = writable_document(session, actor=actor, document_id=document_id, what="file this document")
    holder = lock_holder(document)
    if holder and holder != actor.id:
        raise DocumentLockedError(f"document {document_id} is checked out by another user")
    check_name(name)
    _refuse_taken(session, folder_id, name, ignore=document_id)
    old = {"folder_id": document.folder_id, "name": document.title}
    session.execute(
        update(Document).where(Document.id == document_id)
        .values(folder_id=folder_id, title=name, revision=Document.revision + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.refresh(document)
    audit.record(session, actor=actor.username, action="document.filed", object_type="document",
                 object_id=document_id, details={"old": old, "new": {"folder_id": folder_id, "name": name}})
    events.emit(session, DOCUMENT_FILED, {"document_id": document_id, "folder_id": folder_id})
    return document
