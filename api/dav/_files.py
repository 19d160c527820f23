"""/dav/files/: the repository's folder tree, writable. A PUT of a new name creates a `general` document, a PUT
over a name checks in its next version, DELETE moves a document to the trash, COPY makes a new document from
the current content, MOVE re-files or renames."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete
from wsgidav import util
from wsgidav.dav_provider import DAVCollection, DAVNonCollection

from api.dav import _props
from api.dav._common import DeadProperties, MovedInOneTransaction, actor, forbidden, service
from api.dav._content import info, staging_writer
from api.dav._documents import DocumentFile, document_files
from repository import service as repo
from repository.access import can_write, deny_write
from repository.config import get_settings
from repository.content import stage_stream
from repository.models import ROOT_FOLDER_ID, DavProperty, Document, Folder
from repository.service.document_types import get_type
from repository.service.folders import FOLDER_TYPE


@dataclass(frozen=True)
class FolderInfo:
    """A folder as loaded for one request."""

    id: str
    name: str
    created_at: dt.datetime


def folder_info(folder: Folder) -> FolderInfo:
    """A snapshot of a folder row."""
    return FolderInfo(folder.id, folder.name, folder.created_at)


def check_can_write_folders(environ: dict, folder_id: str) -> None:
    """Raise unless the caller may change folders (they may write `general` documents)."""
    user = actor(environ)
    with service(readonly=True) as session:
        repo.get_folder(session, actor=user, folder_id=folder_id)
        if not can_write(user, get_type(session, name=FOLDER_TYPE)):
            raise deny_write(user, "folder", folder_id, "change folders")


class NewFile(DAVNonCollection):
    """A name in a folder that a PUT is about to create: the document exists (as version 1.0 of the uploaded
    content) only once the body has been received."""

    def __init__(self, path: str, environ: dict, folder_id: str) -> None:
        super().__init__(path, environ)
        self.folder_id = folder_id
        self.created: DocumentFile | None = None
        self._writer = None

    def get_content_length(self) -> int:
        return self.created.get_content_length() if self.created else 0

    def get_etag(self):  # noqa: ANN201
        return self.created.get_etag() if self.created else None

    def support_etag(self) -> bool:
        return self.created is not None

    def get_content(self):  # noqa: ANN201
        raise forbidden("the file does not exist yet")

    def begin_write(self, *, content_type=None):  # noqa: ANN001, ANN201
        check_can_write_folders(self.environ, self.folder_id)
        with service(readonly=True) as session:
            self._writer = staging_writer(session, document_id=None, commit=self._commit, filename=self.name)
        return self._writer

    def _commit(self, staged) -> None:  # noqa: ANN001
        user = actor(self.environ)
        with service() as session:
            document = repo.create_filed_document(session, actor=user, folder_id=self.folder_id, name=self.name,
                                                  content=staged, comment="created over WebDAV")
            self.created = DocumentFile(self.path, self.environ, info(session, user, document.id), filed=True)

    def end_write(self, *, with_errors):  # noqa: ANN001, ANN201
        if self._writer is not None:
            self._writer.discard()


class FolderCollection(MovedInOneTransaction, DeadProperties, DAVCollection):
    """A folder: its subfolders and the documents filed in it."""

    def __init__(self, path: str, environ: dict, folder: FolderInfo) -> None:
        super().__init__(path, environ)
        self.folder = folder
        self.prop_key = f"folder:{folder.id}"

    def get_creation_date(self) -> float:
        return self.folder.created_at.timestamp()

    def get_display_name(self) -> str:
        return self.folder.name or "files"

    def check_prop_write(self) -> None:
        check_can_write_folders(self.environ, self.folder.id)

    def _listing(self) -> list:
        user = actor(self.environ)
        with service(readonly=True) as session:
            listing = repo.list_children(session, actor=user, folder_id=self.folder.id)
            members: list = [FolderCollection(util.join_uri(self.path, f.name), self.environ, folder_info(f))
                             for f in listing.folders]
            members += document_files(self.environ, self.path, listing.documents, session)
        return members

    def get_member_list(self) -> list:
        return self._listing()

    def get_member_names(self) -> list[str]:
        return [m.name for m in self._listing()]

    def get_member(self, name):  # noqa: ANN001, ANN201
        user = actor(self.environ)
        path = util.join_uri(self.path, name)
        with service(readonly=True) as session:
            child = repo.find_child(session, actor=user, folder_id=self.folder.id, name=name)
            if isinstance(child, Folder):
                return FolderCollection(path, self.environ, folder_info(child))
            if isinstance(child, Document):
                return DocumentFile(path, self.environ, info(session, user, child.id), filed=True)
        return None

    def create_empty_resource(self, name):  # noqa: ANN001, ANN201
        path = util.join_uri(self.path, name)
        if self.environ.get("REQUEST_METHOD") == "PUT":
            return NewFile(path, self.environ, self.folder.id)
        # A LOCK on an unmapped name creates an empty document (RFC 4918, 7.3), which the lock then checks out.
        settings = get_settings()
        empty = stage_stream(iter(()), max_bytes=settings.max_upload_bytes, tmp_dir=settings.tmp_dir, filename=name)
        user = actor(self.environ)
        with service() as session:
            document = repo.create_filed_document(session, actor=user, folder_id=self.folder.id, name=name,
                                                  content=empty, comment="created over WebDAV")
            return DocumentFile(path, self.environ, info(session, user, document.id), filed=True)

    def create_collection(self, name):  # noqa: ANN001, ANN201
        with service() as session:
            repo.create_folder(session, actor=actor(self.environ), parent_id=self.folder.id, name=name)

    def support_recursive_delete(self) -> bool:
        return True

    def check_movable(self) -> None:
        if self.folder.id == ROOT_FOLDER_ID:
            raise forbidden("the root folder cannot be moved or deleted")

    def move_in(self, session, user, parent_id: str, name: str) -> None:  # noqa: ANN001
        repo.move_folder(session, actor=user, folder_id=self.folder.id, parent_id=parent_id, name=name)

    def remove_in(self, session, user) -> None:  # noqa: ANN001
        self._delete_tree(session, user, self.folder.id)

    def _delete_tree(self, session, user, folder_id: str) -> None:  # noqa: ANN001
        listing = repo.list_children(session, actor=user, folder_id=folder_id)
        for sub in listing.folders:
            self._delete_tree(session, user, sub.id)
        for document in listing.documents:
            repo.trash_document(session, actor=user, document_id=document.id)
        session.execute(delete(DavProperty).where(DavProperty.resource == f"folder:{folder_id}"))
        repo.delete_folder(session, actor=user, folder_id=folder_id)

    def copy_move_single(self, dest_path, *, is_move):  # noqa: ANN001, ANN201
        if is_move:
            return self.move_recursive(dest_path)
        parent_id, name = self.provider.folder_and_name(dest_path, self.environ)
        user = actor(self.environ)
        with service() as session:
            existing = repo.find_child(session, actor=user, folder_id=parent_id, name=name)
            if isinstance(existing, Folder):
                target_id = existing.id
            else:
                target_id = repo.create_folder(session, actor=user, parent_id=parent_id, name=name).id
        _props.copy(self.prop_key, f"folder:{target_id}")
        return None
