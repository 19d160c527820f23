"""Templates and content blocks: registration, approval workflow, targeting rules and previews. The same routes
serve /api/v1/templates and /api/v1/content-blocks; check-out and check-in go through /api/v1/documents."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentUser
from api.etags import etag, expected_revision
from api.forms import flag_field, json_object_field
from api.idempotency import idempotent_create
from api.uploads import read_form
from correspondence import service as corr
from correspondence.models import BLOCK, TEMPLATE, Template
from correspondence.schemas import (
    DecisionIn,
    PreviewIn,
    RollbackIn,
    RuleIn,
    RuleOut,
    TemplateOut,
    TemplatePatch,
    TemplateRef,
    VersionStateOut,
)
from correspondence.service.templates import template_document
from repository import service
from repository.config import get_settings
from repository.content import StagedContent
from repository.db import transaction
from repository.errors import InvalidInputError
from repository.identity import username_of
from repository.models import User
from repository.service.documents import lock_holder

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def template_out(session: Session, t: Template, *, detail: bool = False, actor: User | None = None) -> TemplateOut:
    """The API shape of a template; with its versions, rules and users when `detail`."""
    document = template_document(session, t)
    out = TemplateOut(
        id=t.id, kind=t.kind, name=t.name, locale=t.locale, is_default=t.is_default, category=t.category,
        description=t.description, document_id=t.document_id, schema=t.data_schema, sample_data=t.sample_data,
        active_version=t.active_label, current_version=document.version_label,
        checked_out_by=username_of(session, lock_holder(document)), revision=t.revision,
        created_by=username_of(session, t.created_by), created_at=t.created_at, updated_at=t.updated_at,
    )
    if detail and actor is not None:
        out.versions = [
            VersionStateOut(
                version=s.version.label, state=s.state, active=s.active,
                author=username_of(session, s.version.created_by), created_at=s.version.created_at,
                comment=s.version.comment, history=s.row.history if s.row else [],
                blocks=s.row.blocks if s.row else [],
                submitted_by=username_of(session, s.row.submitted_by) if s.row else None,
                submitted_at=s.row.submitted_at if s.row else None,
                decided_by=username_of(session, s.row.decided_by) if s.row else None,
                decided_at=s.row.decided_at if s.row else None,
            )
            for s in corr.list_version_states(session, actor=actor, template_id=t.id, kind=t.kind)
        ]
        if t.kind == TEMPLATE:
            out.rules = [RuleOut(slot=r.slot, condition=r.condition, block=r.block, position=r.position)
                         for r in corr.get_rules(session, actor=actor, template_id=t.id)]
        else:
            out.used_by = [TemplateRef(id=u.id, name=u.name, locale=u.locale)
                           for u in corr.used_by(session, name=t.name)]
    return out


def make_router(kind: str, prefix: str) -> APIRouter:
    """The routes of one kind (templates or content blocks)."""
    word = "template" if kind == TEMPLATE else "content block"
    router = APIRouter(prefix=prefix, tags=[f"{word}s"])

    @router.post("", status_code=201, responses={201: {"description": "Created"}})
    async def create(request: Request, user: CurrentUser,
                     idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
        """Register a new one from a DOCX (multipart: file, name, locale, category, schema, sample_data,
        description, is_default); its first version, 1.0, is a draft."""
        settings = get_settings()
        sealer = await run_in_threadpool(_prepare, user)
        form = await read_form(request, max_bytes=settings.max_upload_bytes, tmp_dir=settings.tmp_dir,
                               sealer=sealer)
        try:
            return await run_in_threadpool(_create, user, form.fields, form.file, idempotency_key)
        finally:
            form.file.release()

    def _prepare(user: User):  # noqa: ANN202
        with transaction(readonly=True) as session:
            return service.prepare_upload(session, actor=user)

    def _create(user: User, fields: dict[str, str], staged: StagedContent, key: str | None) -> JSONResponse:
        for required in ("name", "locale") + (("category",) if kind == TEMPLATE else ()):
            if not fields.get(required):
                raise InvalidInputError(f"the form needs a {required!r} field", field=required)
        schema = json_object_field(fields.get("schema"), "schema")
        sample = json_object_field(fields.get("sample_data"), "sample_data")
        is_default = flag_field(fields.get("is_default"), "is_default")

        def make(session: Session) -> dict:
            t = corr.create_template(
                session, actor=user, kind=kind, name=fields["name"], locale=fields["locale"], content=staged,
                category=fields.get("category", ""), schema=schema, sample_data=sample,
                description=fields.get("description", ""), is_default=is_default)
            return template_out(session, t).model_dump(mode="json", by_alias=True)

        fingerprint = ("POST", prefix, fields, staged.sha256, staged.size)
        return idempotent_create(user, key, fingerprint, make,
                                 headers=lambda body: {"Location": f"{prefix}/{body['id']}"})

    @router.get("", response_model=list[TemplateOut], response_model_by_alias=True)
    def list_all(user: CurrentUser, category: Annotated[str | None, Query(max_length=50)] = None,
                 name: Annotated[str | None, Query(max_length=100)] = None,
                 after: Annotated[str | None, Query(max_length=100, description="the last name of the previous "
                                                    "page")] = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 200) -> list[TemplateOut]:
        """The ones the caller may read, by name and locale; a page holds every variant of up to `limit` names."""
        with transaction(readonly=True) as session:
            return [template_out(session, t) for t in corr.list_templates(
                session, actor=user, kind=kind, category=category, name=name, after=after, limit=limit)]

    @router.get("/{template_id}", response_model=TemplateOut, response_model_by_alias=True)
    def get(template_id: str, user: CurrentUser, response: Response) -> TemplateOut:
        """One, with its versions and their approval states."""
        with transaction(readonly=True) as session:
            t = corr.get_template(session, actor=user, template_id=template_id, kind=kind)
            response.headers["ETag"] = etag(t.revision)
            return template_out(session, t, detail=True, actor=user)

    @router.patch("/{template_id}", response_model=TemplateOut, response_model_by_alias=True)
    def patch(template_id: str, body: TemplatePatch, user: CurrentUser, response: Response,
              if_match: Annotated[str | None, Header()] = None) -> TemplateOut:
        """Change category, description, schema, sample data or the default flag (If-Match: the ETag)."""
        changes = body.model_dump(exclude_unset=True, by_alias=True)
        with transaction() as session:
            t = corr.update_template(session, actor=user, template_id=template_id, kind=kind, changes=changes,
                                     expected_revision=expected_revision(if_match, "template"))
            response.headers["ETag"] = etag(t.revision)
            return template_out(session, t, detail=True, actor=user)

    def _decision(action, template_id: str, user: User, body: DecisionIn | None) -> dict:  # noqa: ANN001
        body = body or DecisionIn()
        with transaction() as session:
            state = action(session, actor=user, template_id=template_id, kind=kind, version=body.version,
                           comment=body.comment)
            return {"id": template_id, "version": state.version.label, "state": state.state,
                    "active": state.active}

    @router.post("/{template_id}/submit")
    def submit(template_id: str, user: CurrentUser, body: DecisionIn | None = None) -> dict:
        """Ask for approval of a version (the newest unless `version` is given)."""
        return _decision(corr.submit, template_id, user, body)

    @router.post("/{template_id}/approve")
    def approve(template_id: str, user: CurrentUser, body: DecisionIn | None = None) -> dict:
        """Approve a submitted version (an approver who did not write it)."""
        return _decision(corr.approve, template_id, user, body)

    @router.post("/{template_id}/reject")
    def reject(template_id: str, user: CurrentUser, body: DecisionIn | None = None) -> dict:
        """Reject a submitted version, with a comment."""
        return _decision(corr.reject, template_id, user, body)

    @router.post("/{template_id}/rollback", response_model=TemplateOut, response_model_by_alias=True)
    def rollback(template_id: str, body: RollbackIn, user: CurrentUser) -> TemplateOut:
        """Make an earlier approved version the active one (admins, with a reason)."""
        with transaction() as session:
            t = corr.rollback(session, actor=user, template_id=template_id, kind=kind, version=body.version,
                              reason=body.reason)
            return template_out(session, t, detail=True, actor=user)

    @router.post("/{template_id}/preview", response_class=Response,
                 responses={200: {"content": {DOCX: {}}, "description": "The rendered DOCX"}})
    def preview(template_id: str, user: CurrentUser, body: PreviewIn | None = None) -> Response:
        """Render any version with sample data (given, or the stored sample) as a DOCX."""
        body = body or PreviewIn()
        with transaction(readonly=True) as session:
            docx, label = corr.preview(session, actor=user, template_id=template_id, kind=kind,
                                       version=body.version, data=body.data, customer_id=body.customer_id)
        filename = f"preview-{template_id}-{label}.docx"
        return Response(docx, media_type=DOCX, headers={
            "Content-Disposition": f'attachment; filename="{filename}"', "X-Template-Version": label})

    if kind == TEMPLATE:
        @router.get("/{template_id}/rules", response_model=list[RuleOut])
        def get_rules(template_id: str, user: CurrentUser) -> list[RuleOut]:
            """The targeting table, slot by slot in evaluation order."""
            with transaction(readonly=True) as session:
                return [RuleOut(slot=r.slot, condition=r.condition, block=r.block, position=r.position)
                        for r in corr.get_rules(session, actor=user, template_id=template_id)]

        @router.put("/{template_id}/rules", response_model=list[RuleOut])
        def put_rules(template_id: str, body: list[RuleIn], user: CurrentUser) -> list[RuleOut]:
            """Replace the targeting table (condition -> block, first match per slot wins)."""
            with transaction() as session:
                rules = corr.set_rules(session, actor=user, template_id=template_id,
                                       rules=[r.model_dump() for r in body])
                return [RuleOut(slot=r.slot, condition=r.condition, block=r.block, position=r.position)
                        for r in rules]

    return router


templates_router = make_router(TEMPLATE, "/api/v1/templates")
blocks_router = make_router(BLOCK, "/api/v1/content-blocks")
