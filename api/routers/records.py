"""Records management: the file plan, a document's records state, declaration, reclassification, review
extensions and business events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from api.deps import CurrentUser
from api.idempotency import idempotent_create
from records.models import RetentionClass
from records.schemas import (
    BusinessEventIn,
    BusinessEventOut,
    ClassIn,
    ClassOut,
    ClassPatch,
    DocumentTypesIn,
    ExtendIn,
    ReclassifyIn,
    RecordOut,
    dump,
)
from records.service import classification, declaration, fileplan
from records.service.common import require_records_manager
from repository.db import transaction

router = APIRouter(prefix="/api/v1", tags=["records"])


def class_out(session, cls: RetentionClass) -> ClassOut:  # noqa: ANN001
    """The API shape of a class."""
    return ClassOut(id=cls.id, code=cls.code, parent_id=cls.parent_id, title=cls.title, description=cls.description,
                    trigger=cls.trigger, event_type=cls.event_type, period_value=cls.period_value,
                    period_unit=cls.period_unit, cutoff=cls.cutoff, action=cls.action,
                    auto_declare=cls.auto_declare, legal_basis=cls.legal_basis, rule_revision=cls.rule_revision,
                    document_types=fileplan.types_of(session, cls.id), created_at=cls.created_at,
                    updated_at=cls.updated_at)


@router.get("/records/classes", response_model=list[ClassOut])
def list_classes(user: CurrentUser) -> list[ClassOut]:
    """The file plan, every class by code (records managers)."""
    with transaction(readonly=True) as session:
        require_records_manager(user)
        return [class_out(session, c) for c in fileplan.list_classes(session)]


@router.post("/records/classes", status_code=201, response_model=ClassOut)
def create_class(body: ClassIn, user: CurrentUser,
                 idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Add a class and its retention rule to the file plan; `document_types` file their new documents in it."""

    def make(session) -> dict:  # noqa: ANN001
        fields = body.model_dump(exclude={"document_types"})
        cls = fileplan.create_class(session, actor=user, **fields)
        if body.document_types:
            fileplan.map_document_types(session, actor=user, class_id=cls.id, document_types=body.document_types)
        return dump(class_out(session, cls))

    return idempotent_create(user, idempotency_key, ("POST", "/records/classes", body.model_dump()), make)


@router.get("/records/classes/{class_ref}", response_model=ClassOut)
def get_class(class_ref: str, user: CurrentUser) -> ClassOut:
    """One class, by id or code."""
    with transaction(readonly=True) as session:
        require_records_manager(user)
        return class_out(session, fileplan.get_class(session, class_ref=class_ref))


@router.patch("/records/classes/{class_ref}", response_model=ClassOut)
def update_class(class_ref: str, body: ClassPatch, user: CurrentUser) -> ClassOut:
    """Change a class (with a reason); a rule change recomputes the due dates of its documents."""
    changes = body.model_dump(exclude_unset=True, exclude={"reason"})
    with transaction() as session:
        cls = fileplan.get_class(session, class_ref=class_ref)
        cls = fileplan.update_class(session, actor=user, class_id=cls.id, reason=body.reason, **changes)
        return class_out(session, cls)


@router.put("/records/classes/{class_ref}/document-types", response_model=ClassOut)
def map_types(class_ref: str, body: DocumentTypesIn, user: CurrentUser) -> ClassOut:
    """Set which document types file their new documents in this class."""
    with transaction() as session:
        cls = fileplan.get_class(session, class_ref=class_ref)
        fileplan.map_document_types(session, actor=user, class_id=cls.id, document_types=body.document_types)
        return class_out(session, cls)


def _record(session, user, document_id: str) -> RecordOut:  # noqa: ANN001
    view = declaration.record_view(session, actor=user, document_id=document_id)
    return RecordOut(**view.__dict__)


@router.get("/documents/{document_id}/record", response_model=RecordOut)
def get_record(document_id: str, user: CurrentUser) -> RecordOut:
    """A document's class, retention clock, due date, declaration and holds."""
    with transaction(readonly=True) as session:
        return _record(session, user, document_id)


@router.post("/documents/{document_id}/record", response_model=RecordOut)
def declare(document_id: str, user: CurrentUser) -> RecordOut:
    """Declare the document a record: its content and versions are frozen from now on."""
    with transaction() as session:
        declaration.declare(session, actor=user, document_id=document_id)
        return _record(session, user, document_id)


@router.post("/documents/{document_id}/record/reclassify", response_model=RecordOut)
def reclassify(document_id: str, body: ReclassifyIn, user: CurrentUser) -> RecordOut:
    """Move the document to another class (records managers, with a reason)."""
    with transaction() as session:
        classification.reclassify(session, actor=user, document_id=document_id, class_ref=body.class_,
                                  reason=body.reason)
        return _record(session, user, document_id)


@router.post("/documents/{document_id}/record/extend", response_model=RecordOut)
def extend(document_id: str, body: ExtendIn, user: CurrentUser) -> RecordOut:
    """Keep the document until a later date (a review decision; records managers, with a reason)."""
    with transaction() as session:
        classification.extend(session, actor=user, document_id=document_id, until=body.until, reason=body.reason)
        return _record(session, user, document_id)


@router.post("/records/events", status_code=201, response_model=BusinessEventOut)
def business_event(body: BusinessEventIn, user: CurrentUser,
                   idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Record a business event (such as account_closed) for a customer; starts the clocks it triggers."""

    def make(session) -> dict:  # noqa: ANN001
        event, started = classification.record_business_event(
            session, actor=user, type=body.type, customer_id=body.customer_id, occurred_at=body.occurred_at)
        return dump(BusinessEventOut(id=event.id, type=event.type, customer_id=event.customer_id,
                                     occurred_at=event.occurred_at, recorded_by=event.recorded_by,
                                     recorded_at=event.recorded_at, documents_started=started))

    return idempotent_create(user, idempotency_key, ("POST", "/records/events", body.model_dump(mode="json")), make)
