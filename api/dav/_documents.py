"""Documents as WebDAV resources: a document's file (its current version, or the holder's working copy), its
read-only older versions, and the collections of /dav/documents/."""

from __future__ import annotations

from sqlalchemy import select
from wsgidav import util
from wsgidav.dav_provider import DAVCollection, DAVNonCollection

from api.dav import _props
from api.dav._common import DeadProperties, MovedInOneTransaction, actor, forbidden, service
from api.dav._content import (
    Content,
    DocInfo,
    info,
    infos,
    open_content,
    put_document,
    stage_copy,
    staging_writer,
    version_content,
)
from repository import service as repo
from repository.errors import DocumentLockedError, NotFoundError
from repository.models import Document
from repository.service.documents import ACTIVE, lock_holder, writable_document
from repository.types import utcnow


class _ContentFile(DAVNonCollection):
    """A non-collection backed by one piece of a document's content."""

    def __init__(self, path: str, environ: dict, document_id: str, content: Content) -> None:
        super().__init__(path, environ)
        self.document_id = document_id
        self.content = content

    def get_content_length(self) -> int:
        return self.content.size

    def get_content_type(self) -> str:
        return self.content.media_type or "application/octet-stream"

    def get_etag(self) -> str:
        return self.content.sha256

    def support_etag(self) -> bool:
        return True

    def support_ranges(self) -> bool:
        return True

    def get_last_modified(self) -> float:
        return self.content.modified.timestamp()

    def get_content(self):  # noqa: ANN201
        with service(readonly=True) as session:
            repo.get_document(session, actor=actor(self.environ), document_id=self.document_id)  # still readable
            return open_content(session, self.document_id, self.content)

    def delete(self):  # noqa: ANN201
        raise forbidden("this resource cannot be deleted")

    def support_recursive_move(self, dest_path):  # noqa: ANN001, ANN201
        return False

    def handle_copy(self, dest_path, *, depth_infinity):  # noqa: ANN001, ANN201
        target = self.provider.get_resource_inst(dest_path, self.environ)
        if isinstance(target, DocumentFile):  # over an existing document: its next version, not a new document
            target.overwrite_with(self)
            return True
        return False

    def copy_move_single(self, dest_path, *, is_move):  # noqa: ANN001, ANN201
        if is_move:
            raise forbidden("this resource cannot be moved")
        if self.handle_copy(dest_path, depth_infinity=False):
            return
        folder_id, name = self.provider.folder_and_name(dest_path, self.environ)
        staged = stage_copy(self.document_id, self.content, name)
        try:
            with service() as session:
                new = repo.create_filed_document(session, actor=actor(self.environ), folder_id=folder_id, name=name,
                                                 content=staged, comment=f"copied from document {self.document_id}")
                new_id = new.id
        finally:
            staged.release()
        _props.copy(f"document:{self.document_id}", f"document:{new_id}")


class VersionFile(_ContentFile):
    """An older version, read-only: /dav/documents/<id>/versions/<label>/<filename>."""

    def prevent_locking(self) -> bool:
        return True

    def get_creation_date(self) -> float:
        return self.content.modified.timestamp()


class DocumentFile(MovedInOneTransaction, DeadProperties, _ContentFile):
    """A document's file: GET answers the current version (the lock holder's working copy, if they saved one),
    LOCK checks out, PUT saves the working copy (or checks in a new version without a lock), UNLOCK checks in.
    Documents in folders (/dav/files/) can also be deleted (to the trash, discarding a working copy), copied and
    moved (renamed; releasing the mover's lock checks the working copy in)."""

    def __init__(self, path: str, environ: dict, doc: DocInfo, *, filed: bool) -> None:
        super().__init__(path, environ, doc.id, doc.shown)
        self.doc = doc
        self.filed = filed
        self.prop_key = f"document:{doc.id}"

    def get_creation_date(self) -> float:
        return self.doc.created_at.timestamp()

    def check_prop_write(self) -> None:
        self._check_writable("change the properties of this document")

    def _check_writable(self, what: str) -> None:
        user = actor(self.environ)
        with service(readonly=True) as session:
            document = writable_document(session, actor=user, document_id=self.document_id, what=what)
            holder = lock_holder(document)
            if holder and holder != user.id:
                raise DocumentLockedError(f"document {document.id} is checked out by another user")

    def _refresh(self) -> None:
        with service(readonly=True) as session:
            self.doc = info(session, actor(self.environ), self.document_id)
        self.content = self.doc.shown

    def begin_write(self, *, content_type=None):  # noqa: ANN001, ANN201
        self._check_writable("save this document")
        with service(readonly=True) as session:
            self._writer = staging_writer(session, document_id=self.document_id, commit=self._commit,
                                          filename=self.name)
        return self._writer

    def _commit(self, staged) -> None:  # noqa: ANN001
        with service() as session:
            put_document(session, actor(self.environ), self.document_id, staged)
        self._refresh()

    def end_write(self, *, with_errors):  # noqa: ANN001, ANN201
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.discard()

    def overwrite_with(self, source: _ContentFile) -> None:
        """COPY over this document: the source's content becomes this document's next version."""
        self._check_writable("overwrite this document")
        staged = stage_copy(source.document_id, source.content, self.name, target_id=self.document_id)
        try:
            with service() as session:
                put_document(session, actor(self.environ), self.document_id, staged)
        finally:
            staged.release()

    def check_movable(self) -> None:
        if not self.filed:
            raise forbidden("only documents in folders under /dav/files/ can be moved or deleted (or use the API)")

    def move_in(self, session, user, parent_id: str, name: str) -> None:  # noqa: ANN001
        repo.file_document(session, actor=user, document_id=self.document_id, folder_id=parent_id, name=name)

    def remove_in(self, session, user) -> None:  # noqa: ANN001
        repo.trash_document(session, actor=user, document_id=self.document_id)

    def copy_move_single(self, dest_path, *, is_move):  # noqa: ANN001, ANN201
        if is_move:
            return self.move_recursive(dest_path)
        return super().copy_move_single(dest_path, is_move=False)


class _ReadOnlyCollection(DAVCollection):
    """A collection the repository computes: nothing can be created, deleted or locked in it."""

    def prevent_locking(self) -> bool:
        return True

    def create_empty_resource(self, name):  # noqa: ANN001, ANN201
        raise forbidden("files cannot be created here; use /dav/files/ for new documents")

    def create_collection(self, name):  # noqa: ANN001, ANN201
        raise forbidden("collections cannot be created here; use /dav/files/")

    def delete(self):  # noqa: ANN201
        raise forbidden("this collection cannot be deleted")

    def copy_move_single(self, dest_path, *, is_move):  # noqa: ANN001, ANN201
        raise forbidden("this collection cannot be copied or moved")

    def support_recursive_move(self, dest_path):  # noqa: ANN001, ANN201
        return False

    def support_recursive_delete(self) -> bool:
        return False

    def handle_delete(self):  # noqa: ANN201
        raise forbidden("this collection cannot be deleted")


class CheckedOutCollection(_ReadOnlyCollection):
    """/dav/documents/: lists the caller's checked-out documents (not every document: there may be millions);
    any readable document is reachable by its id."""

    def get_member_names(self) -> list[str]:
        user = actor(self.environ)
        with service(readonly=True) as session:
            ids = session.execute(
                select(Document.id).where(Document.checked_out_by == user.id, Document.lock_expires_at > utcnow(),
                                          Document.state == ACTIVE).order_by(Document.id)
            ).scalars()
            readable = []
            for doc_id in ids:
                try:
                    repo.get_document(session, actor=user, document_id=doc_id)
                except NotFoundError:
                    continue
                readable.append(doc_id)
        return readable


class DocumentCollection(_ReadOnlyCollection):
    """/dav/documents/<id>/: the document's file and its versions."""

    def __init__(self, path: str, environ: dict, doc: DocInfo) -> None:
        super().__init__(path, environ)
        self.doc = doc

    def get_creation_date(self) -> float:
        return self.doc.created_at.timestamp()

    def get_display_name(self) -> str:
        return self.doc.title

    def get_member_names(self) -> list[str]:
        return [self.doc.file_name, "versions"]

    def get_member(self, name):  # noqa: ANN001, ANN201
        if name == "versions":
            return VersionsCollection(util.join_uri(self.path, name), self.environ, self.doc)
        if name == self.doc.file_name:
            return DocumentFile(util.join_uri(self.path, name), self.environ, self.doc, filed=False)
        return None


class VersionsCollection(_ReadOnlyCollection):
    """/dav/documents/<id>/versions/: one collection per version label."""

    def __init__(self, path: str, environ: dict, doc: DocInfo) -> None:
        super().__init__(path, environ)
        self.doc = doc

    def _versions(self) -> list[Content]:
        with service(readonly=True) as session:
            rows = repo.list_versions(session, actor=actor(self.environ), document_id=self.doc.id)
            return [version_content(v) for v in rows]

    def get_member_names(self) -> list[str]:
        return [c.label for c in self._versions()]  # type: ignore[misc]

    def get_member(self, name):  # noqa: ANN001, ANN201
        for content in self._versions():
            if content.label == name:
                return VersionCollection(util.join_uri(self.path, name), self.environ, self.doc.id, content)
        return None


class VersionCollection(_ReadOnlyCollection):
    """/dav/documents/<id>/versions/<label>/: holds that version's file."""

    def __init__(self, path: str, environ: dict, document_id: str, content: Content) -> None:
        super().__init__(path, environ)
        self.document_id = document_id
        self.content = content

    def get_creation_date(self) -> float:
        return self.content.modified.timestamp()

    def get_member_names(self) -> list[str]:
        return [self.content.filename or "content"]

    def get_member(self, name):  # noqa: ANN001, ANN201
        if name == (self.content.filename or "content"):
            return VersionFile(util.join_uri(self.path, name), self.environ, self.document_id, self.content)
        return None


def document_files(environ: dict, parent_path: str, documents: list[Document], session) -> list[DocumentFile]:  # noqa: ANN001
    """Filed documents as members of a folder collection (snapshots built together)."""
    user = actor(environ)
    return [DocumentFile(util.join_uri(parent_path, d.title), environ, d, filed=True)
            for d in infos(session, user, documents)]
