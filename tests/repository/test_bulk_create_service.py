"""Many documents in one transaction (`create_documents`): the same rows, content, audit and events as one at a
time, and all or nothing when an item is refused; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy.exc
from sqlalchemy import func, select

from repository import audit, service
from repository.db import transaction
from repository.errors import DuplicateError, InvalidInputError, PermissionDeniedError, UnsupportedMediaTypeError
from repository.models import DataKey, Document, DocumentVersion, OutboxEvent
from repository.runtime import get_runtime
from repository.types import new_id
from tests.repository.helpers import staged

pytestmark = pytest.mark.usefixtures("repo")


def _items(n: int, customer_id: str | None = None) -> list[service.NewDocument]:
    return [service.NewDocument(title=f"Letter {i}", content=staged(f"letter number {i}\n".encode() * (i + 1)),
                                customer_id=customer_id, metadata={"n": i}) for i in range(n)]


def _counts() -> tuple[int, int, int]:
    with transaction() as s:
        return tuple(s.execute(select(func.count()).select_from(t)).scalar_one()  # type: ignore[return-value]
                     for t in (Document, DocumentVersion, DataKey))


def test_every_document_reads_back_as_version_1_0_with_its_audit_row_and_event(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    with transaction() as s:
        customer = service.create_customer(s, actor=alice.user, external_ref="C-1", name="Ann")
        s.flush()
        ids = service.create_documents(s, actor=alice.user, document_type="general",
                                       items=_items(25, customer.id))
    assert len(set(ids)) == 25
    with transaction() as s:
        for i, document_id in enumerate(ids):
            doc = service.get_document(s, actor=alice.user, document_id=document_id)
            assert (doc.title, doc.meta, doc.version_label, doc.customer_id) == (f"Letter {i}", {"n": i}, "1.0",
                                                                               customer.id)
            version = service.get_version(s, actor=alice.user, document_id=document_id)
            assert b"".join(service.read_version(s, version=version)) == f"letter number {i}\n".encode() * (i + 1)
            assert version.media_type == "text/plain"
        created = s.execute(select(OutboxEvent.payload).where(OutboxEvent.name == "document.created")).scalars()
        assert {p["document_id"] for p in created} == set(ids)
        assert audit.verify(s).ok
        listed = service.list_documents(s, actor=alice.user, customer_id=customer.id, limit=100)
        assert {d.id for d in listed.items} == set(ids)


def test_one_refused_item_leaves_no_document_and_no_blob(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    items = _items(5)
    items[3] = service.NewDocument(title="Bad", content=staged(b"%PDF-1.7 pretend", "x.pdf"))
    with transaction() as s:
        service.create_type(s, actor=make_user("root", "admin").user, name="notes",
                            allowed_media_types=["text/plain"], read_roles=["author"], write_roles=["author"])
    with pytest.raises(UnsupportedMediaTypeError), transaction() as s:
        service.create_documents(s, actor=alice.user, document_type="notes", items=items)
    with pytest.raises(InvalidInputError), transaction() as s:
        service.create_documents(s, actor=alice.user, document_type="general", items=_items(3, "no-such-customer"))
    assert _counts() == (0, 0, 0)
    assert [b for b in get_runtime().store.list() if not b.key.split("/")[1].startswith(".tmp-")] == []


def test_a_caller_who_may_not_write_the_type_gets_nothing_written(make_user) -> None:  # noqa: ANN001
    helpdesk = make_user("hd", "helpdesk")
    author = make_user("alice", "author")
    with pytest.raises(PermissionDeniedError), transaction() as s:  # helpdesk may read `letter`s, not write them
        service.create_documents(s, actor=helpdesk.user, document_type="letter", items=_items(2))
    assert _counts() == (0, 0, 0)
    with transaction() as s:
        assert len(service.create_documents(s, actor=author.user, document_type="letter", items=_items(2))) == 2


def test_a_new_document_whose_key_already_holds_a_blob_is_refused_and_nothing_is_left(make_user) -> None:  # noqa: ANN001
    # An earlier attempt with the same id left a blob encrypted under a key nobody has: never reuse it.
    alice = make_user("alice", "author")
    items = _items(3)
    items[1] = service.NewDocument(title="Retry", content=items[1].content, document_id=new_id())
    leftover = f"{items[1].document_id}/{items[1].content.sha256}"
    get_runtime().store.put(leftover, [b"ciphertext of a lost attempt"])
    with pytest.raises(DuplicateError) as refused, transaction() as s:
        service.create_documents(s, actor=alice.user, document_type="general", items=items)
    assert refused.value.extra["item"] == 1
    assert [b.key for b in get_runtime().store.list()] == [leftover]
    assert _counts() == (0, 0, 0)


def test_rows_that_cannot_be_inserted_take_their_new_blobs_with_them(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    with transaction() as s:
        (existing,) = service.create_documents(s, actor=alice.user, document_type="general", items=_items(1))
    before = sorted(b.key for b in get_runtime().store.list())
    items = [service.NewDocument(title="Same id", content=staged(b"other content"), document_id=existing)]
    with pytest.raises(sqlalchemy.exc.IntegrityError), transaction() as s:
        service.create_documents(s, actor=alice.user, document_type="general", items=items)
    assert sorted(b.key for b in get_runtime().store.list()) == before
