"""Blob garbage collection and working copies, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import select

from repository import gc, runtime, service
from repository.db import transaction
from repository.errors import NotFoundError
from repository.models import AuditEntry, Document
from tests.repository.helpers import staged

pytestmark = pytest.mark.usefixtures("repo")
NOW = dt.timedelta(0)


def _checked_out_with_draft(account, draft: bytes) -> tuple[str, str]:  # noqa: ANN001
    with transaction() as s:
        doc_id = service.create_document(s, actor=account.user, title="Doc", document_type="general",
                                         content=staged(b"version one")).id
    with transaction() as s:
        service.checkout(s, actor=account.user, document_id=doc_id)
    with transaction() as s:
        saved = service.save_working_copy(s, actor=account.user, document_id=doc_id, content=staged(draft))
    return doc_id, saved.blob_key


def test_gc_keeps_a_working_copy_no_version_points_at(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id, key = _checked_out_with_draft(alice, b"unsaved work")
    store = runtime.get_runtime().store
    report = gc.collect(store, min_age=NOW)
    assert report.orphans == [] and store.exists(key)
    with transaction(readonly=True) as s:
        _w, stream = service.read_working_copy(s, actor=alice.user, document_id=doc_id)
    assert b"".join(stream) == b"unsaved work"


def test_gc_keeps_a_checked_in_working_copy(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id, key = _checked_out_with_draft(alice, b"final words")
    with transaction() as s:
        service.checkin(s, actor=alice.user, document_id=doc_id)
    store = runtime.get_runtime().store
    assert gc.collect(store, min_age=NOW).orphans == [] and store.exists(key)


def test_gc_removes_a_discarded_working_copy(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id, key = _checked_out_with_draft(alice, b"thrown away")
    with transaction() as s:
        service.cancel_checkout(s, actor=alice.user, document_id=doc_id)
    store = runtime.get_runtime().store
    report = gc.collect(store, min_age=NOW)
    assert report.orphans == [key] and not store.exists(key)


def test_gc_removes_a_replaced_working_copy_but_keeps_the_new_one(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id, first = _checked_out_with_draft(alice, b"first draft")
    with transaction() as s:
        second = service.save_working_copy(s, actor=alice.user, document_id=doc_id,
                                           content=staged(b"second draft")).blob_key
    store = runtime.get_runtime().store
    assert gc.collect(store, min_age=NOW).orphans == [first]
    assert store.exists(second)


def test_trashing_a_checked_out_document_discards_its_working_copy(make_user) -> None:  # noqa: ANN001
    alice = make_user("alice", "author")
    doc_id, key = _checked_out_with_draft(alice, b"a draft in the bin")
    with transaction() as s:
        service.trash_document(s, actor=alice.user, document_id=doc_id)
    with transaction(readonly=True) as s:
        row = s.get(Document, doc_id)
        assert (row.checked_out_by, row.working_blob_key, row.working_sha256) == (None, None, None)
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "document.trashed")).scalar_one()
        assert entry.details == {"discarded_working_copy": hashlib.sha256(b"a draft in the bin").hexdigest()}
    store = runtime.get_runtime().store
    report = gc.collect(store, min_age=NOW)
    assert report.orphans == [key] and not store.exists(key)
    with transaction() as s:  # restored, the document has its versions and no draft
        service.restore_document(s, actor=alice.user, document_id=doc_id)
    with transaction() as s:
        service.checkout(s, actor=alice.user, document_id=doc_id)
    with pytest.raises(NotFoundError), transaction(readonly=True) as s:
        service.read_working_copy(s, actor=alice.user, document_id=doc_id)
