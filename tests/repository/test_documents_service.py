"""Documents and versions through the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from repository import service
from repository.db import transaction
from repository.errors import (
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    UnknownDocumentTypeError,
    UnsupportedMediaTypeError,
)
from repository.models import Document, DocumentVersion
from tests.repository.helpers import staged

pytestmark = pytest.mark.usefixtures("repo")


def _create(account, data=b"first content", **kw):  # noqa: ANN001, ANN202
    with transaction() as s:
        doc = service.create_document(s, actor=account.user, title=kw.pop("title", "Doc"),
                                      document_type=kw.pop("document_type", "general"), content=staged(data), **kw)
        return doc.id


def test_first_upload_is_version_1_0_and_reads_back(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice, b"hello repository", metadata={"policy": "P-1"})
    with transaction() as s:
        doc = service.get_document(s, actor=alice.user, document_id=doc_id)
        assert doc.version_label == "1.0"
        assert doc.meta == {"policy": "P-1"}
        v = service.get_version(s, actor=alice.user, document_id=doc_id)
        assert (v.label, v.size, v.media_type) == ("1.0", 16, "text/plain")
        assert b"".join(service.read_version(s, version=v)) == b"hello repository"


def test_unknown_type_and_bad_metadata_leave_nothing(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    with pytest.raises(UnknownDocumentTypeError):
        _create(alice, document_type="no-such-type")
    with pytest.raises(InvalidInputError):
        _create(alice, metadata=["not", "an", "object"])
    with transaction() as s:
        assert s.query(Document).count() == 0
        assert s.query(DocumentVersion).count() == 0


def test_reader_without_access_sees_not_found_and_reader_with_access_sees_it(make_user) -> None:  # noqa: ANN001
    admin = make_user("root", "admin")
    author = make_user("alice", "author")
    helpdesk = make_user("hd", "helpdesk")
    with transaction() as s:
        service.create_type(s, actor=admin.user, name="hr-file", allowed_media_types=[], read_roles=["author"],
                            write_roles=["author"])
    doc_id = _create(author, document_type="hr-file")
    with transaction() as s, pytest.raises(NotFoundError):
        service.get_document(s, actor=helpdesk.user, document_id=doc_id)
    with transaction() as s:
        assert service.get_document(s, actor=author.user, document_id=doc_id).id == doc_id
        assert service.list_documents(s, actor=helpdesk.user).items == []
        assert [d.id for d in service.list_documents(s, actor=author.user).items] == [doc_id]


def test_media_type_allow_list_is_enforced_by_content_not_name(make_user) -> None:  # noqa: ANN001
    admin = make_user("root", "admin")
    with transaction() as s:
        service.create_type(s, actor=admin.user, name="pdf-only", allowed_media_types=["application/pdf"],
                            read_roles=["admin"], write_roles=["admin"])
    with transaction() as s, pytest.raises(UnsupportedMediaTypeError):
        service.create_document(s, actor=admin.user, title="x", document_type="pdf-only",
                                content=staged(b"plain text pretending", filename="report.pdf"))
    doc_id = _create(admin, b"%PDF-1.7\n%fake but pdf by magic\n", document_type="pdf-only")
    with transaction() as s:
        assert service.get_version(s, actor=admin.user, document_id=doc_id).media_type == "application/pdf"


def test_helpdesk_cannot_create_in_author_only_type(make_user) -> None:  # noqa: ANN001
    helpdesk = make_user("hd", "helpdesk")
    with pytest.raises(PermissionDeniedError):
        _create(helpdesk)


def test_listing_pages_with_cursor(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    ids = {_create(alice, f"doc {i}".encode(), title=f"Doc {i}") for i in range(7)}
    seen, cursor = [], None
    while True:
        with transaction() as s:
            page = service.list_documents(s, actor=alice.user, limit=3, cursor=cursor)
        seen += [d.id for d in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 7 and set(seen) == ids


def test_trash_and_restore(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id = _create(alice)
    with transaction() as s:
        service.trash_document(s, actor=alice.user, document_id=doc_id)
    with transaction() as s:
        assert service.list_documents(s, actor=alice.user).items == []
        assert [d.id for d in service.list_documents(s, actor=alice.user, trashed=True).items] == [doc_id]
        service.restore_document(s, actor=alice.user, document_id=doc_id)
    with transaction() as s:
        assert [d.id for d in service.list_documents(s, actor=alice.user).items] == [doc_id]
