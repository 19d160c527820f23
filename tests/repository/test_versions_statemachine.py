"""Check-out, check-in, cancel and break in random order against a simple model (SQLite).

The model keeps, per document, who holds the lock and every version's label and bytes. After every step the
database must agree with it; every operation the model says must fail raises the right error and changes nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import func, select

from repository import identity, service
from repository.db import get_engine, transaction
from repository.errors import (
    DocumentLockedError,
    InvalidInputError,
    NotCheckedOutError,
    PermissionDeniedError,
    RepositoryError,
)
from repository.models import AuditEntry, Document, DocumentVersion, OutboxEvent, User
from tests.repository.helpers import staged
from tests.statemachine_support import point_at, restore_env, saved_env, sqlite_template

USERS = ("author1", "author2", "admin")
ADMIN = 2
DOCS = 2

# Content that the upload checks would refuse or inspect as an archive/XML is not what this machine is about.
contents = st.binary(max_size=2000).filter(lambda b: not b.lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"PK", b"<")))
users = st.integers(0, len(USERS) - 1)
docs = st.integers(0, DOCS - 1)


def _users() -> None:
    roles = {"author1": ["author"], "author2": ["author"], "admin": ["admin"]}
    with transaction() as s:
        for name in USERS:
            identity.create_user(s, username=name, password="state-machine-pw", roles=roles[name], actor="test")


@lru_cache
def _template() -> Path:
    """A migrated SQLite database with the three users, built once and copied for every example."""
    return sqlite_template("postroom-sm-template-", _users)


def _next_label(label: str, major: bool) -> str:
    ma, mi = (int(p) for p in label.split("."))
    return f"{ma + 1}.0" if major else f"{ma}.{mi + 1}"


class VersionsMachine(RuleBasedStateMachine):
    """Three users (two authors, one admin) working on two documents."""

    def __init__(self) -> None:
        super().__init__()
        self._saved_env = saved_env()
        template = _template()
        self.root = Path(tempfile.mkdtemp(prefix="postroom-sm-"))
        point_at(self.root)
        (self.root / "data").mkdir()
        shutil.copyfile(template, self.root / "data" / "postroom.db")
        with transaction() as s:
            by_name = {u.username: u for u in s.execute(select(User)).scalars()}
            for u in by_name.values():
                s.expunge(u)
        self.users = [by_name[name] for name in USERS]
        self.doc_ids: list[str] = []
        self.holder: list[int | None] = []
        self.versions: list[list[tuple[str, bytes]]] = []
        for i in range(DOCS):
            first = f"document {i} first version".encode()
            with transaction() as s:
                doc = service.create_document(s, actor=self.users[0], title=f"Doc {i}", document_type="general",
                                              content=staged(first))
                self.doc_ids.append(doc.id)
            self.holder.append(None)
            self.versions.append([("1.0", first)])

    def teardown(self) -> None:
        get_engine().dispose()
        restore_env(self._saved_env)
        shutil.rmtree(self.root, ignore_errors=True)

    # --- helpers -----------------------------------------------------------------------------------------------

    def _snapshot(self) -> tuple:
        with transaction() as s:
            documents = [
                (d.id, d.checked_out_by, d.lock_expires_at, d.revision, d.current_major, d.current_minor, d.state)
                for d in s.execute(select(Document).order_by(Document.id)).scalars()
            ]
            versions = [
                (v.id, v.document_id, v.label, v.sha256, v.size, v.blob_key, v.created_at)
                for v in s.execute(select(DocumentVersion).order_by(DocumentVersion.id)).scalars()
            ]
            audit_rows = s.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
            events = s.execute(select(func.count()).select_from(OutboxEvent)).scalar_one()
        return documents, versions, audit_rows, events

    def _must_fail(self, error: type[RepositoryError], call) -> None:  # noqa: ANN001
        before = self._snapshot()
        try:
            with transaction() as s:
                call(s)
        except error:
            pass
        else:
            raise AssertionError(f"expected {error.__name__}")
        assert self._snapshot() == before, "a refused operation changed the repository"

    # --- rules ---------------------------------------------------------------------------------------------------

    @rule(user=users, doc=docs)
    def checkout(self, user: int, doc: int) -> None:
        def call(s) -> None:  # noqa: ANN001
            service.checkout(s, actor=self.users[user], document_id=self.doc_ids[doc])

        if self.holder[doc] in (None, user):
            with transaction() as s:
                call(s)
            self.holder[doc] = user
        else:
            self._must_fail(DocumentLockedError, call)

    @rule(user=users, doc=docs, data=contents, major=st.booleans())
    def checkin(self, user: int, doc: int, data: bytes, major: bool) -> None:
        def call(s):  # noqa: ANN001, ANN202
            return service.checkin(s, actor=self.users[user], document_id=self.doc_ids[doc], content=staged(data),
                                   major=major)

        if self.holder[doc] == user:
            expected = _next_label(self.versions[doc][-1][0], major)
            with transaction() as s:
                assert call(s).label == expected
            self.versions[doc].append((expected, data))
            self.holder[doc] = None
        else:
            self._must_fail(NotCheckedOutError, call)

    @rule(user=users, doc=docs)
    def cancel(self, user: int, doc: int) -> None:
        def call(s) -> None:  # noqa: ANN001
            service.cancel_checkout(s, actor=self.users[user], document_id=self.doc_ids[doc])

        holder = self.holder[doc]
        if holder is None:
            self._must_fail(NotCheckedOutError, call)
        elif holder == user:
            with transaction() as s:
                call(s)
            self.holder[doc] = None
        elif user == ADMIN:
            self._must_fail(InvalidInputError, call)  # breaking someone's lock needs a reason
        else:
            self._must_fail(PermissionDeniedError, call)

    @rule(doc=docs, reason=st.sampled_from(["", "   ", "author is on leave", "stuck lock"]))
    def break_lock(self, doc: int, reason: str) -> None:
        def call(s) -> None:  # noqa: ANN001
            service.cancel_checkout(s, actor=self.users[ADMIN], document_id=self.doc_ids[doc], reason=reason)

        holder = self.holder[doc]
        if holder is None:
            self._must_fail(NotCheckedOutError, call)
        elif holder != ADMIN and not reason.strip():
            self._must_fail(InvalidInputError, call)
        else:
            with transaction() as s:
                call(s)
            self.holder[doc] = None

    @precondition(lambda self: any(len(v) > 1 for v in self.versions))
    @rule(user=users)
    def read_all_versions(self, user: int) -> None:
        for doc, doc_id in enumerate(self.doc_ids):
            with transaction() as s:
                rows = service.list_versions(s, actor=self.users[user], document_id=doc_id)
                got = [(v.label, b"".join(service.read_version(s, version=v))) for v in rows]
            assert got == self.versions[doc]

    # --- invariants ----------------------------------------------------------------------------------------------

    @invariant()
    def lock_holder_matches_model(self) -> None:
        with transaction() as s:
            for doc, doc_id in enumerate(self.doc_ids):
                d = s.get(Document, doc_id)
                expected = None if self.holder[doc] is None else self.users[self.holder[doc]].id
                assert d.checked_out_by == expected
                assert (d.lock_expires_at is None) == (expected is None)

    @invariant()
    def versions_match_model_and_read_back(self) -> None:
        with transaction() as s:
            for doc, doc_id in enumerate(self.doc_ids):
                d = s.get(Document, doc_id)
                rows = list(s.execute(select(DocumentVersion).where(DocumentVersion.document_id == doc_id)
                                      .order_by(DocumentVersion.major, DocumentVersion.minor)).scalars())
                assert [v.label for v in rows] == [label for label, _ in self.versions[doc]]
                assert d.version_label == self.versions[doc][-1][0]
                for v, (_, data) in zip(rows, self.versions[doc], strict=True):
                    assert v.size == len(data)
                    assert b"".join(service.read_version(s, version=v)) == data


TestVersionsStateMachine = VersionsMachine.TestCase
TestVersionsStateMachine.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)
