"""The WebDAV provider: maps /dav paths to repository objects.

    /dav/documents/                                  the caller's checked-out documents
    /dav/documents/<id>/<filename>                   a document's current version (the holder's working copy)
    /dav/documents/<id>/versions/<label>/<filename>  an older version, read-only
    /dav/files/...                                   the folder tree, writable
    /dav/templates/<name>[.<locale>].docx            correspondence templates
    /dav/content-blocks/<name>[.<locale>].docx       content blocks
"""

from __future__ import annotations

from wsgidav import util
from wsgidav.dav_error import (
    HTTP_CONFLICT,
    HTTP_NOT_FOUND,
    HTTP_REQUEST_ENTITY_TOO_LARGE,
    DAVError,
)
from wsgidav.dav_provider import DAVProvider

from api.dav import _templates
from api.dav._common import actor, dav_error, service, serving
from api.dav._content import info, version_content
from api.dav._documents import (
    CheckedOutCollection,
    DocumentCollection,
    DocumentFile,
    VersionCollection,
    VersionFile,
    _ReadOnlyCollection,
)
from api.dav._files import FolderCollection, folder_info
from repository import errors
from repository import service as repo
from repository.config import get_settings
from repository.models import ROOT_FOLDER_ID, Document

XML_METHODS = ("PROPFIND", "PROPPATCH", "LOCK", "UNLOCK")
MAX_XML_BODY = 1024 * 1024


class RootCollection(_ReadOnlyCollection):
    """/dav/: the namespaces."""

    def get_member_names(self) -> list[str]:
        return ["documents", "files", *_templates.KINDS]

    def get_member(self, name):  # noqa: ANN001, ANN201
        return self.provider.get_resource_inst(util.join_uri(self.path, name), self.environ)


class RepositoryProvider(DAVProvider):
    """Resolves paths to resources, one short read-only transaction per lookup."""

    def __repr__(self) -> str:
        return "RepositoryProvider"

    def custom_request_handler(self, environ, start_response, default_handler):  # noqa: ANN001, ANN201
        def run():  # noqa: ANN202
            with serving(environ):
                length, method = util.get_content_length(environ), environ["REQUEST_METHOD"]
                if method in XML_METHODS and length > MAX_XML_BODY:
                    raise DAVError(HTTP_REQUEST_ENTITY_TOO_LARGE, f"request bodies are limited to {MAX_XML_BODY} bytes")
                limit = get_settings().max_upload_bytes
                if method == "PUT" and length > limit:  # refused before a byte is read
                    raise DAVError(HTTP_REQUEST_ENTITY_TOO_LARGE, f"the upload is over the limit of {limit} bytes")
                try:
                    yield from default_handler(environ, start_response)
                except errors.RepositoryError as exc:
                    raise dav_error(exc) from exc

        return run()

    def get_resource_inst(self, path: str, environ: dict):  # noqa: ANN201
        self._count_get_resource_inst += 1
        parts = [p for p in path.split("/") if p]
        try:
            if not parts:
                return RootCollection("/", environ)
            head, rest = parts[0], parts[1:]
            clean = "/" + "/".join(parts)
            if head == "documents":
                return self._documents(clean, rest, environ)
            if head == "files":
                return self._files(clean, rest, environ)
            if head in _templates.KINDS:
                return _templates.resolve(clean, head, rest, environ)
            return None
        except DAVError as exc:
            if exc.value == HTTP_NOT_FOUND:
                return None
            raise

    def _documents(self, path: str, rest: list[str], environ: dict):  # noqa: ANN202
        if not rest:
            return CheckedOutCollection(path, environ)
        if len(rest) > 4:
            return None
        user = actor(environ)
        with service(readonly=True) as session:
            doc = info(session, user, rest[0])
            if len(rest) < 3 or rest[1] != "versions":
                collection = DocumentCollection("/documents/" + rest[0], environ, doc)
                return collection if len(rest) == 1 else (collection.get_member(rest[1]) if len(rest) == 2 else None)
            version = repo.get_version(session, actor=user, document_id=doc.id, version=rest[2])
        content = version_content(version)
        base = f"/documents/{doc.id}/versions/{content.label}"
        if len(rest) == 3:
            return VersionCollection(base, environ, doc.id, content)
        if rest[3] == (content.filename or "content"):
            return VersionFile(path, environ, doc.id, content)
        return None

    def _files(self, path: str, rest: list[str], environ: dict):  # noqa: ANN202
        user = actor(environ)
        with service(readonly=True) as session:
            node = repo.get_folder(session, actor=user, folder_id=ROOT_FOLDER_ID)
            for i, name in enumerate(rest):
                child = repo.find_child(session, actor=user, folder_id=node.id, name=name)
                if isinstance(child, Document):
                    if i != len(rest) - 1:
                        return None
                    return DocumentFile(path, environ, info(session, user, child.id), filed=True)
                if child is None:
                    return None
                node = child
            return FolderCollection(path, environ, folder_info(node))

    def folder_and_name(self, dest_path: str, environ: dict) -> tuple[str, str]:
        """The folder a COPY or MOVE destination lies in, and its last name (409 outside /dav/files/)."""
        parent = self.get_resource_inst(util.get_uri_parent(dest_path) or "/", environ)
        if not isinstance(parent, FolderCollection):
            raise DAVError(HTTP_CONFLICT, "documents can only be copied or moved into folders under /dav/files/")
        return parent.folder.id, util.get_uri_name(dest_path)

