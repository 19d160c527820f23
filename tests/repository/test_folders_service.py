"""The folder tree (WebDAV's /dav/files/) through the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from repository import service
from repository.db import transaction
from repository.errors import (
    DocumentLockedError,
    DuplicateError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from repository.models import ROOT_FOLDER_ID, AuditEntry, Document, DocumentType
from tests.repository.helpers import staged

pytestmark = pytest.mark.usefixtures("repo")


def _folder(account, name: str, parent: str = ROOT_FOLDER_ID) -> str:  # noqa: ANN001
    with transaction() as s:
        return service.create_folder(s, actor=account.user, parent_id=parent, name=name).id


def _file(account, folder_id: str, name: str, data: bytes = b"content") -> str:  # noqa: ANN001
    with transaction() as s:
        return service.create_filed_document(s, actor=account.user, folder_id=folder_id, name=name,
                                             content=staged(data, name)).id


def _names(account, folder_id: str) -> tuple[list[str], list[str]]:  # noqa: ANN001
    with transaction(readonly=True) as s:
        listing = service.list_children(s, actor=account.user, folder_id=folder_id)
        return [f.name for f in listing.folders], [d.title for d in listing.documents]


def test_folders_hold_subfolders_and_general_documents(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    letters = _folder(alice, "letters")
    _folder(alice, "drafts", letters)
    doc_id = _file(alice, letters, "ada.txt")
    assert _names(alice, letters) == (["drafts"], ["ada.txt"])
    assert _names(alice, ROOT_FOLDER_ID) == (["letters"], [])
    with transaction(readonly=True) as s:
        doc = service.find_child(s, actor=alice.user, folder_id=letters, name="ada.txt")
        assert doc.id == doc_id and doc.title == "ada.txt"
        assert s.get(DocumentType, doc.document_type_id).name == "general"
        assert service.find_child(s, actor=alice.user, folder_id=letters, name="nobody.txt") is None
        actions = s.execute(select(AuditEntry.action)).scalars().all()
    assert actions.count("folder.created") == 2 and "document.filed" in actions


def test_a_name_is_used_once_per_folder(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    letters = _folder(alice, "letters")
    _file(alice, letters, "ada.txt")
    for clash in (lambda: _folder(alice, "letters"), lambda: _file(alice, letters, "ada.txt"),
                  lambda: _folder(alice, "ada.txt", letters)):
        with pytest.raises(DuplicateError):
            clash()
    _file(alice, _folder(alice, "other"), "ada.txt")  # another folder may


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "back\\slash", "tab\there", "x" * 256])
def test_unusable_names_are_refused(make_user, name: str) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    with pytest.raises(InvalidInputError):
        _folder(alice, name)


def test_documents_are_renamed_and_refiled_but_not_under_another_users_checkout(make_user) -> None:  # noqa: ANN001
    alice, bob = make_user("alice", "author"), make_user("bob", "author")
    a, b = _folder(alice, "a"), _folder(alice, "b")
    doc_id = _file(alice, a, "note.txt")
    with transaction() as s:
        service.file_document(s, actor=alice.user, document_id=doc_id, folder_id=b, name="renamed.txt")
    assert _names(alice, a) == ([], []) and _names(alice, b) == ([], ["renamed.txt"])
    with transaction() as s:
        service.checkout(s, actor=bob.user, document_id=doc_id)
    with pytest.raises(DocumentLockedError), transaction() as s:
        service.file_document(s, actor=alice.user, document_id=doc_id, folder_id=a, name="mine.txt")


def test_folders_move_but_never_into_themselves(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    top = _folder(alice, "top")
    inner = _folder(alice, "inner", top)
    with pytest.raises(InvalidInputError, match="into itself"), transaction() as s:
        service.move_folder(s, actor=alice.user, folder_id=top, parent_id=inner, name="loop")
    with pytest.raises(InvalidInputError), transaction() as s:
        service.move_folder(s, actor=alice.user, folder_id=ROOT_FOLDER_ID, parent_id=top, name="root")
    with transaction() as s:
        service.move_folder(s, actor=alice.user, folder_id=inner, parent_id=ROOT_FOLDER_ID, name="outer")
    assert _names(alice, ROOT_FOLDER_ID) == (["outer", "top"], [])


def test_only_empty_folders_are_deleted_and_trashed_documents_lose_their_folder(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    folder = _folder(alice, "old")
    doc_id = _file(alice, folder, "kept.txt")
    with pytest.raises(InvalidInputError, match="not empty"), transaction() as s:
        service.delete_folder(s, actor=alice.user, folder_id=folder)
    with transaction() as s:
        service.trash_document(s, actor=alice.user, document_id=doc_id)
    with transaction() as s:
        service.delete_folder(s, actor=alice.user, folder_id=folder)
    with transaction(readonly=True) as s:
        assert s.get(Document, doc_id).folder_id is None
    with pytest.raises(NotFoundError), transaction(readonly=True) as s:
        service.get_folder(s, actor=alice.user, folder_id=folder)
    with pytest.raises(InvalidInputError), transaction() as s:
        service.delete_folder(s, actor=alice.user, folder_id=ROOT_FOLDER_ID)


def test_folder_permissions_follow_the_general_type_in_pairs(make_user) -> None:  # noqa: ANN001
    alice, reader, outsider = make_user("alice", "author"), make_user("hd", "helpdesk"), make_user("aud", "auditor")
    with transaction() as s:
        s.execute(update(DocumentType).where(DocumentType.name == "general")
                  .values(read_roles=["author", "helpdesk"]))
    letters = _folder(alice, "letters")
    with pytest.raises(NotFoundError), transaction(readonly=True) as s:
        service.list_children(s, actor=outsider.user, folder_id=letters)
    with transaction(readonly=True) as s:
        assert service.list_children(s, actor=reader.user, folder_id=letters).folders == []
    with pytest.raises(NotFoundError):
        _folder(outsider, "mine", letters)
    with pytest.raises(PermissionDeniedError):
        _folder(reader, "mine", letters)
    assert _folder(alice, "mine", letters)
