"""Templates, blocks and their approval workflow through the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import io

import docx as python_docx
import pytest
from sqlalchemy import select

from correspondence import events as correspondence_events
from correspondence import service as corr
from correspondence.errors import (
    DataValidationError,
    FourEyesError,
    NotApproverError,
    SchemaError,
    TemplateNotFoundError,
    TemplateSyntaxError,
    UnknownBlockError,
    WorkflowError,
)
from correspondence.models import BLOCK, TEMPLATE
from repository import service
from repository.db import transaction
from repository.errors import DuplicateError, InvalidInputError, PermissionDeniedError
from repository.models import AuditEntry, DocumentType
from tests.correspondence.docx_factory import make_docx
from tests.repository.helpers import staged

pytestmark = pytest.mark.usefixtures("repo")

SCHEMA = {"type": "object", "properties": {"balance": {"type": "number"}, "due": {"type": "string"}},
          "required": ["balance"]}


@pytest.fixture(autouse=True)
def _checks():  # noqa: ANN202
    correspondence_events.register()


@pytest.fixture
def people(make_user):  # noqa: ANN001, ANN201
    """An author, two approvers (one also an author), an admin and a help-desk user."""
    return {
        "author": make_user("alice", "author"),
        "approver": make_user("bob", "approver"),
        "author_approver": make_user("carol", "author", "approver"),
        "admin": make_user("root", "admin"),
        "helpdesk": make_user("harry", "helpdesk"),
    }


def _text(docx_bytes: bytes) -> str:
    return "\n".join(p.text for p in python_docx.Document(io.BytesIO(docx_bytes)).paragraphs)


def _create(account, name: str = "statement", paragraphs: list[str] | None = None, *, kind: str = TEMPLATE,  # noqa: ANN001
            locale: str = "en-GB", schema: dict | None = None, sample: dict | None = None) -> str:
    body = make_docx(paragraphs or ["Balance: {{ balance }}"])
    with transaction() as s:
        t = corr.create_template(s, actor=account.user, kind=kind, name=name, locale=locale,
                                 content=staged(body, f"{name}.docx"), category="statement" if kind == TEMPLATE else "",
                                 schema=schema if schema is not None else (SCHEMA if kind == TEMPLATE else None),
                                 sample_data=sample or ({"balance": 12.5} if kind == TEMPLATE else {}))
        return t.id


def _checkin(account, template_id: str, paragraphs: list[str], kind: str = TEMPLATE) -> str:  # noqa: ANN001
    with transaction() as s:
        document_id = corr.get_template(s, actor=account.user, template_id=template_id, kind=kind).document_id
        service.checkout(s, actor=account.user, document_id=document_id)
    with transaction() as s:
        version = service.checkin(s, actor=account.user, document_id=document_id,
                                  content=staged(make_docx(paragraphs), "t.docx"), major=False, comment="edit")
        return version.label


def _act(action, account, template_id: str, kind: str = TEMPLATE, **kwargs):  # noqa: ANN001, ANN202
    with transaction() as s:
        return action(s, actor=account.user, template_id=template_id, kind=kind, **kwargs)


def _customer(account, locale: str = "en-GB", segment: dict | None = None) -> str:  # noqa: ANN001
    with transaction() as s:
        c = service.create_customer(s, actor=account.user, external_ref=f"C-{locale}-{segment}", name="Ada Lovelace")
        if hasattr(c, "locale"):
            c.locale, c.segment = locale, segment or {}
        return c.id


def _letter(account, template: str, customer_id: str, data: dict) -> corr.RenderedLetter:  # noqa: ANN001
    with transaction(readonly=True) as s:
        return corr.render_letter(s, actor=account.user, template=template, customer_id=customer_id, data=data)


def test_a_new_template_is_a_draft_document_of_type_template(people) -> None:  # noqa: ANN001
    template_id = _create(people["author"])
    with transaction(readonly=True) as s:
        states = corr.list_version_states(s, actor=people["helpdesk"].user, template_id=template_id)
        template = corr.get_template(s, actor=people["helpdesk"].user, template_id=template_id)
        document = service.get_document(s, actor=people["author"].user, document_id=template.document_id)
        assert s.get(DocumentType, document.document_type_id).name == "template"
    assert [(v.version.label, v.state, v.active) for v in states] == [("1.0", "draft", False)]
    assert template.active_label is None and template.is_default


def test_names_locales_and_schemas_are_checked(people) -> None:  # noqa: ANN001
    _create(people["author"])
    with pytest.raises(DuplicateError):
        _create(people["author"])
    with pytest.raises(InvalidInputError, match="locale"):
        _create(people["author"], "other", locale="xx-nowhere")
    with pytest.raises(SchemaError, match="not valid JSON Schema"):
        _create(people["author"], "other", schema={"type": "object", "properties": {"a": {"type": "nonsense"}}})
    with pytest.raises(InvalidInputError, match="name"):
        _create(people["author"], "Bad Name")


def test_helpdesk_cannot_create_templates(people) -> None:  # noqa: ANN001
    with pytest.raises(PermissionDeniedError):
        _create(people["helpdesk"])


def test_four_eyes_approval_makes_the_version_active_and_letters_use_it(people) -> None:  # noqa: ANN001
    template_id = _create(people["author_approver"])
    _act(corr.submit, people["author_approver"], template_id)
    with pytest.raises(FourEyesError, match="four eyes"):
        _act(corr.approve, people["author_approver"], template_id)
    with pytest.raises(NotApproverError):
        _act(corr.approve, people["author"], template_id)
    state = _act(corr.approve, people["approver"], template_id, comment="fine")
    assert (state.state, state.active) == ("approved", True)
    customer_id = _customer(people["admin"])
    letter = _letter(people["helpdesk"], "statement", customer_id, {"balance": 42})
    assert letter.version == "1.0" and "Balance: 42" in _text(letter.docx)
    with transaction(readonly=True) as s:
        actions = list(s.execute(select(AuditEntry.action).where(AuditEntry.object_id == template_id)).scalars())
    assert actions == ["template.created", "template.version_submitted", "template.version_approved"]


def test_only_submitted_versions_can_be_decided_and_rejected_ones_are_never_used(people) -> None:  # noqa: ANN001
    template_id = _create(people["author"], paragraphs=["Version one {{ balance }}"])
    with pytest.raises(WorkflowError, match="draft"):
        _act(corr.approve, people["approver"], template_id)
    _act(corr.submit, people["author"], template_id)
    _act(corr.approve, people["approver"], template_id)
    assert _checkin(people["author"], template_id, ["Version two {{ balance }}"]) == "1.1"
    _act(corr.submit, people["author"], template_id)
    state = _act(corr.reject, people["approver"], template_id, comment="wrong tone")
    assert state.state == "rejected"
    with pytest.raises(WorkflowError, match="check in a new version"):
        _act(corr.submit, people["author"], template_id)
    customer_id = _customer(people["admin"])
    letter = _letter(people["helpdesk"], template_id, customer_id, {"balance": 1})
    assert letter.version == "1.0" and "Version one" in _text(letter.docx)
    with transaction(readonly=True) as s:
        states = corr.list_version_states(s, actor=people["author"].user, template_id=template_id)
    assert [(v.version.label, v.state) for v in states] == [("1.0", "approved"), ("1.1", "rejected")]
    assert states[1].row.history[-1]["comment"] == "wrong tone"


def test_a_template_without_an_approved_version_cannot_make_letters(people) -> None:  # noqa: ANN001
    template_id = _create(people["author"])
    customer_id = _customer(people["admin"])
    with pytest.raises(WorkflowError, match="no approved version"):
        _letter(people["helpdesk"], template_id, customer_id, {"balance": 1})


def test_admin_rolls_back_to_an_earlier_approved_version(people) -> None:  # noqa: ANN001
    template_id = _create(people["author"], paragraphs=["First {{ balance }}"])
    _act(corr.submit, people["author"], template_id)
    _act(corr.approve, people["approver"], template_id)
    _checkin(people["author"], template_id, ["Second {{ balance }}"])
    _act(corr.submit, people["author"], template_id)
    _act(corr.approve, people["approver"], template_id)
    customer_id = _customer(people["admin"])
    assert "Second" in _text(_letter(people["helpdesk"], template_id, customer_id, {"balance": 1}).docx)
    with pytest.raises(PermissionDeniedError):
        _act(corr.rollback, people["approver"], template_id, version="1.0", reason="typo")
    with pytest.raises(InvalidInputError, match="reason"):
        _act(corr.rollback, people["admin"], template_id, version="1.0", reason=" ")
    _act(corr.rollback, people["admin"], template_id, version="1.0", reason="the new wording confused people")
    letter = _letter(people["helpdesk"], template_id, customer_id, {"balance": 1})
    assert letter.version == "1.0" and "First" in _text(letter.docx)
    _checkin(people["author"], template_id, ["Third {{ balance }}"])
    with pytest.raises(WorkflowError, match="never approved"):
        _act(corr.rollback, people["admin"], template_id, version="1.2", reason="try")


def test_check_in_refuses_jinja_that_does_not_parse_naming_tag_and_paragraph(people) -> None:  # noqa: ANN001
    template_id = _create(people["author"])
    with pytest.raises(TemplateSyntaxError) as caught:
        _checkin(people["author"], template_id, ["Intro text", "Your balance is {{ balance + }} today"])
    assert "balance" in caught.value.extra["tag"]
    assert "Your balance is" in caught.value.extra["paragraph"]
    with transaction(readonly=True) as s:
        states = corr.list_version_states(s, actor=people["author"].user, template_id=template_id)
    assert [v.version.label for v in states] == ["1.0"]


def test_templates_may_only_include_blocks_that_exist(people) -> None:  # noqa: ANN001
    with pytest.raises(UnknownBlockError, match="disclaimer"):
        _create(people["author"], paragraphs=["Hello", "{{ block('disclaimer') }}"])
    _create(people["author"], "disclaimer", ["Regulated by the Authority."], kind=BLOCK)
    template_id = _create(people["author"], paragraphs=["Balance {{ balance }}", "{{ block('disclaimer') }}"])
    assert template_id


def test_submitting_lists_variables_the_schema_does_not_declare(people) -> None:  # noqa: ANN001
    template_id = _create(people["author"], paragraphs=["{{ balance }} due {{ due }} for {{ account_no }} {{ iban }}"])
    with pytest.raises(SchemaError) as caught:
        _act(corr.submit, people["author"], template_id)
    assert caught.value.extra["undeclared"] == ["account_no", "iban"]


def test_blocks_are_approved_included_and_show_which_templates_use_them(people) -> None:  # noqa: ANN001
    block_id = _create(people["author"], "disclaimer", ["Regulated by the Authority, {{ customer.name }}."],
                       kind=BLOCK)
    template_id = _create(people["author"], paragraphs=["Balance {{ balance }}", "{{ block('disclaimer') }}"])
    _act(corr.submit, people["author"], template_id)
    _act(corr.approve, people["approver"], template_id)
    customer_id = _customer(people["admin"])
    with pytest.raises(WorkflowError, match="disclaimer"):
        _letter(people["helpdesk"], template_id, customer_id, {"balance": 1})
    _act(corr.submit, people["author"], block_id, kind=BLOCK)
    _act(corr.approve, people["approver"], block_id, kind=BLOCK)
    text = _text(_letter(people["helpdesk"], template_id, customer_id, {"balance": 1}).docx)
    assert "Regulated by the Authority, Ada Lovelace." in text
    with transaction(readonly=True) as s:
        assert [t.id for t in corr.used_by(s, name="disclaimer")] == [template_id]


def test_data_is_validated_against_the_schema_listing_every_problem(people) -> None:  # noqa: ANN001
    template_id = _create(people["author"])
    _act(corr.submit, people["author"], template_id)
    _act(corr.approve, people["approver"], template_id)
    customer_id = _customer(people["admin"])
    with pytest.raises(DataValidationError) as caught:
        _letter(people["helpdesk"], template_id, customer_id, {"due": 5})
    paths = sorted(p["path"] for p in caught.value.extra["problems"])
    assert paths == ["(top level)", "due"]
    with pytest.raises(DataValidationError, match="reserved"):
        _letter(people["helpdesk"], template_id, customer_id, {"balance": 1, "customer": "x"})


def test_locale_variants_fall_back_to_the_language_then_the_default(people) -> None:  # noqa: ANN001
    for locale, text in (("en-GB", "Balance {{ balance }}"), ("de-DE", "Kontostand {{ balance }}")):
        template_id = _create(people["author"], paragraphs=[text], locale=locale)
        _act(corr.submit, people["author"], template_id)
        _act(corr.approve, people["approver"], template_id)
    with transaction(readonly=True) as s:
        pick = lambda loc: corr.get_template_by_name(s, actor=people["helpdesk"].user, name="statement",  # noqa: E731
                                                     locale=loc).locale
        assert (pick("de-DE"), pick("de-AT"), pick("fr-FR"), pick(None)) == ("de-DE", "de-DE", "en-GB", "en-GB")
        with pytest.raises(TemplateNotFoundError):
            corr.get_template_by_name(s, actor=people["helpdesk"].user, name="nothing")


def test_targeting_rules_choose_a_block_by_segment(people) -> None:  # noqa: ANN001
    for name, text in (("promo-premium", "Premium offer inside."), ("promo-standard", "Ask about upgrades.")):
        block_id = _create(people["author"], name, [text], kind=BLOCK)
        _act(corr.submit, people["author"], block_id, kind=BLOCK)
        _act(corr.approve, people["approver"], block_id, kind=BLOCK)
    template_id = _create(people["author"], paragraphs=["Balance {{ balance }}", "{{ slot('promotion') }}"])
    with transaction() as s:
        corr.set_rules(s, actor=people["author"].user, template_id=template_id, rules=[
            {"slot": "promotion", "condition": "customer.segment.tier == 'premium'", "block": "promo-premium"},
            {"slot": "promotion", "condition": "customer.segment.tier == 'standard'", "block": "promo-standard"},
        ])
    _act(corr.submit, people["author"], template_id)
    _act(corr.approve, people["approver"], template_id)
    premium = _customer(people["admin"], segment={"tier": "premium"})
    standard = _customer(people["admin"], segment={"tier": "standard"})
    basic = _customer(people["admin"], segment={"tier": "basic"})
    texts = [_text(_letter(people["helpdesk"], template_id, c, {"balance": 1}).docx)
             for c in (premium, standard, basic)]
    assert "Premium offer inside." in texts[0] and "Ask about upgrades." not in texts[0]
    assert "Ask about upgrades." in texts[1] and "Premium offer" not in texts[1]
    assert "Premium offer" not in texts[2] and "Ask about upgrades." not in texts[2]
    with transaction() as s, pytest.raises(UnknownBlockError):
        corr.set_rules(s, actor=people["author"].user, template_id=template_id,
                       rules=[{"slot": "promotion", "condition": "true", "block": "missing"}])
    with transaction() as s, pytest.raises(TemplateSyntaxError):
        corr.set_rules(s, actor=people["author"].user, template_id=template_id,
                       rules=[{"slot": "promotion", "condition": "customer.segment ==", "block": "promo-premium"}])
    with transaction(readonly=True) as s:
        assert len(corr.get_rules(s, actor=people["author"].user, template_id=template_id)) == 2


def test_preview_renders_drafts_for_authors_and_approvers_only(people) -> None:  # noqa: ANN001
    template_id = _create(people["author"], sample={"balance": 99.5})
    for who in ("author", "approver"):
        with transaction(readonly=True) as s:
            docx_bytes, label = corr.preview(s, actor=people[who].user, template_id=template_id)
        assert label == "1.0" and "Balance: 99.5" in _text(docx_bytes)
    with transaction(readonly=True) as s, pytest.raises(PermissionDeniedError):
        corr.preview(s, actor=people["helpdesk"].user, template_id=template_id)


def test_rules_and_schema_reach_letters_only_with_an_approved_version(people) -> None:  # noqa: ANN001
    for name, text in (("promo-a", "Offer A."), ("promo-b", "Offer B.")):
        block_id = _create(people["author"], name, [text], kind=BLOCK)
        _act(corr.submit, people["author"], block_id, kind=BLOCK)
        _act(corr.approve, people["approver"], block_id, kind=BLOCK)
    template_id = _create(people["author"], paragraphs=["Balance {{ balance }}", "{{ slot('offer') }}"])
    with transaction() as s:
        corr.set_rules(s, actor=people["author"].user, template_id=template_id,
                       rules=[{"slot": "offer", "condition": "true", "block": "promo-a"}])
    _act(corr.submit, people["author"], template_id)
    _act(corr.approve, people["approver"], template_id)
    customer_id = _customer(people["admin"])
    with transaction() as s:  # one author alone changes the rules and loosens the schema
        corr.set_rules(s, actor=people["author"].user, template_id=template_id,
                       rules=[{"slot": "offer", "condition": "true", "block": "promo-b"}])
        corr.update_template(s, actor=people["author"].user, template_id=template_id, kind=TEMPLATE,
                             changes={"schema": {"type": "object", "properties": {"balance": {}}}})
    letter = _text(_letter(people["helpdesk"], template_id, customer_id, {"balance": 3}).docx)
    assert "Offer A." in letter and "Offer B." not in letter
    with pytest.raises(DataValidationError):  # the approved schema still requires a balance
        _letter(people["helpdesk"], template_id, customer_id, {})
    with transaction(readonly=True) as s:  # the preview shows the draft rules
        preview, _label = corr.preview(s, actor=people["author"].user, template_id=template_id)
    assert "Offer B." in _text(preview)
    _checkin(people["author"], template_id, ["Balance {{ balance }}", "{{ slot('offer') }}"])
    _act(corr.submit, people["author"], template_id)
    _act(corr.approve, people["approver"], template_id)
    letter = _text(_letter(people["helpdesk"], template_id, customer_id, {"balance": 3}).docx)
    assert "Offer B." in letter and "Offer A." not in letter


def test_a_draft_locale_variant_does_not_stop_letters_in_that_language(people) -> None:  # noqa: ANN001
    template_id = _create(people["author"], paragraphs=["English {{ balance }}"])
    _act(corr.submit, people["author"], template_id)
    _act(corr.approve, people["approver"], template_id)
    _create(people["author"], paragraphs=["Deutsch {{ balance }}"], locale="de-DE")
    german = _customer(people["admin"], locale="de-DE")
    letter = _letter(people["helpdesk"], "statement", german, {"balance": 1})
    assert letter.template.locale == "en-GB" and "English 1" in _text(letter.docx)


def test_schemas_may_only_refer_inside_themselves(people) -> None:  # noqa: ANN001
    local = {"type": "object", "$defs": {"amount": {"type": "number"}},
             "properties": {"balance": {"$ref": "#/$defs/amount"}}}
    assert _create(people["author"], "local-ref", schema=local)
    for ref in ("#/$defs/missing", "https://example.com/schema.json", "other.json"):
        broken = {"type": "object", "properties": {"balance": {"$ref": ref}}}
        with pytest.raises(SchemaError, match="refers to"):
            _create(people["author"], "broken-ref", schema=broken)
