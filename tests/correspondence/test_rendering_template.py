"""Checking templates in and compiling them: syntax errors name the tag and paragraph, blocks and slot rules are
expanded, and what a template reads is listed for the schema check."""

from __future__ import annotations

import io

import pytest

from correspondence.errors import (
    DataValidationError,
    RenderError,
    TemplateSecurityError,
    TemplateSyntaxError,
    UnknownBlockError,
)
from correspondence.rendering import (
    MAX_TEMPLATE_BYTES,
    RESERVED,
    BlockSource,
    Rule,
    check_condition,
    compile_template,
    inspect_template,
    make_context,
    render_one,
)
from tests.correspondence.docx_factory import make_docx, member, text_of, with_member


def inspect(*paragraphs: str, **kwargs):  # noqa: ANN003, ANN201
    return inspect_template(io.BytesIO(make_docx(list(paragraphs), split_runs=True, **kwargs)))


def syntax_error(*paragraphs: str, **kwargs) -> TemplateSyntaxError:  # noqa: ANN003
    with pytest.raises(TemplateSyntaxError) as caught:
        inspect(*paragraphs, **kwargs)
    return caught.value


def test_a_tag_that_does_not_parse_is_named_with_its_paragraph() -> None:
    error = syntax_error("Dear {{ name }},", "Your balance is {{ amount | }} today.", "Yours")
    assert error.extra["tag"] == "{{ amount | }}"
    assert error.extra["paragraph"] == "Your balance is {{ amount | }} today."
    assert error.extra["part"] == "word/document.xml"
    assert isinstance(error.extra["line"], int)
    assert "{{ amount | }}" in error.detail


def test_an_unclosed_block_names_its_opening_tag() -> None:
    error = syntax_error("Dear {{ name }},", "{% if vip %}You are a VIP.", "Yours")
    assert error.extra["tag"] == "{% if vip %}"
    assert error.extra["paragraph"] == "{% if vip %}You are a VIP."
    assert "endif" in error.detail


def test_a_stray_end_tag_is_named() -> None:
    error = syntax_error("Dear {{ name }},", "Thanks.{% endfor %}")
    assert error.extra["tag"] == "{% endfor %}"
    assert error.extra["paragraph"] == "Thanks.{% endfor %}"


def test_errors_in_headers_name_the_part() -> None:
    error = syntax_error("Body {{ x }}", header="Ref {{ letter.reference ) }}")
    assert error.extra["part"] == "word/header1.xml"
    assert error.extra["tag"] == "{{ letter.reference ) }}"


def test_the_paragraph_is_cut_to_200_characters() -> None:
    error = syntax_error("x" * 300 + " {{ a b }}")
    assert len(error.extra["paragraph"]) <= 200


@pytest.mark.parametrize("data", [b"", b"not a zip", b"PK\x03\x04 broken"])
def test_a_file_that_is_not_a_docx_is_a_syntax_error(data: bytes) -> None:
    with pytest.raises(TemplateSyntaxError, match="not a valid DOCX"):
        inspect_template(io.BytesIO(data))


def test_variables_are_listed_without_reserved_set_loop_or_global_names() -> None:
    info = inspect("Dear {{ customer.name }}, {{ today|date }} {{ letter.reference }}",
                   "{% set total = amount * 2 %}{{ total|money(currency) }}",
                   "{% for row in rows %}{{ row.name }} {{ loop.index }}{% endfor %}",
                   "{% for i in range(3) %}{{ i }}{% endfor %}{{ image('logo') }}",
                   "{% if vip %}VIP{% endif %}",
                   header="{{ branch }}")
    assert info.variables == {"amount", "currency", "rows", "vip", "branch"}
    assert not info.variables & set(RESERVED)
    assert info.has_images


def test_blocks_and_slots_are_listed() -> None:
    info = inspect("Dear {{ name }},", "{{ block('legal') }}", "{{p slot('promotion') }}", "{{ block('signature') }}")
    assert info.blocks == {"legal", "signature"}
    assert info.slots == {"promotion"}
    assert not info.has_images
    assert "block" not in info.variables and "slot" not in info.variables


@pytest.mark.parametrize("paragraph, message", [
    ("{{ block(name) }}", "quoted string"),
    ("See {{ block('legal') }} here", "stand alone"),
    ("{{ 'x' ~ block('legal') }}", "tag of its own"),
    ("{{ slot() }}", "quoted string"),
])
def test_blocks_must_be_literal_and_alone_in_their_paragraph(paragraph: str, message: str) -> None:
    error = syntax_error("Dear customer,", paragraph)
    assert message in error.detail
    assert error.extra["paragraph"] == paragraph


@pytest.mark.parametrize("paragraph", ["{% include 'other.docx' %}", "{% extends 'base' %}",
                                       "{% import 'macros' as m %}", "{% from 'x' import y %}"])
def test_include_import_and_extends_are_refused(paragraph: str) -> None:
    error = syntax_error("Dear customer,", paragraph)
    assert "block(" in error.detail and error.extra["tag"] == paragraph


def test_blocks_cannot_be_used_in_headers() -> None:
    error = syntax_error("Body", header="{{ block('legal') }}")
    assert "body" in error.detail and error.extra["part"] == "word/header1.xml"


def blocks(**docs: bytes) -> dict[str, BlockSource]:
    return {name: BlockSource(name=name, docx=data) for name, data in docs.items()}


def test_an_unknown_block_is_refused_naming_it() -> None:
    template = make_docx(["Dear {{ name }},", "{{ block('legal') }}"])
    with pytest.raises(UnknownBlockError) as caught:
        compile_template(io.BytesIO(template), blocks=blocks(other=make_docx(["x"])))
    assert caught.value.extra["block"] == "legal"
    assert caught.value.extra["tag"] == "{{ block('legal') }}"
    assert caught.value.extra["paragraph"] == "{{ block('legal') }}"
    assert "legal" in caught.value.detail


def test_an_unknown_block_in_a_rule_is_refused() -> None:
    template = make_docx(["Dear {{ name }},", "{{ slot('promotion') }}"])
    with pytest.raises(UnknownBlockError) as caught:
        compile_template(io.BytesIO(template), blocks={},
                         rules=[Rule(slot="promotion", condition="true", block="summer-offer")])
    assert caught.value.extra["block"] == "summer-offer"


def test_blocks_are_included_and_rendered_with_the_letter_context() -> None:
    template = make_docx(["Dear {{ customer.name }},", "{{ block('legal') }}", "{{p block('signature') }}",
                          "Reference {{ letter.reference }}"])
    legal = make_docx(["This letter to {{ customer.name }} is binding.", "Regulated by the {{ regulator }}."])
    signature = make_docx(["Yours sincerely,", "{{ sender }}"])
    compiled = compile_template(io.BytesIO(template), blocks=blocks(legal=legal, signature=signature))
    context = make_context({"regulator": "FCA", "sender": "Jo Bloggs"}, customer={"name": "Ann Lee"},
                           letter={"reference": "L-1"})
    lines = text_of(render_one(compiled, context)).splitlines()
    assert lines == ["Dear Ann Lee,", "This letter to Ann Lee is binding.", "Regulated by the FCA.",
                     "Yours sincerely,", "Jo Bloggs", "Reference L-1"]


def test_a_block_may_not_include_another_block() -> None:
    template = make_docx(["{{ block('outer') }}"])
    outer = make_docx(["Outer", "{{ block('inner') }}"])
    with pytest.raises(TemplateSyntaxError, match="blocks may not include other blocks") as caught:
        compile_template(io.BytesIO(template), blocks=blocks(outer=outer, inner=make_docx(["Inner"])))
    assert caught.value.extra["block"] == "outer"


def test_a_block_that_is_not_a_docx_is_refused() -> None:
    with pytest.raises(TemplateSyntaxError, match="'legal' is not a valid DOCX"):
        compile_template(io.BytesIO(make_docx(["{{ block('legal') }}"])), blocks=blocks(legal=b"nonsense"))


def test_a_block_with_a_sandbox_escape_is_refused() -> None:
    evil = make_docx(["{{ cycler.__init__.__globals__ }}"])
    with pytest.raises(TemplateSecurityError):
        compile_template(io.BytesIO(make_docx(["{{ block('legal') }}"])), blocks=blocks(legal=evil))


RULES = [
    Rule(slot="promotion", condition="customer.segment.tier == 'premium'", block="premium-offer"),
    Rule(slot="promotion", condition="customer.segment.tier == 'gold' or customer.segment.tier == 'premium'",
         block="gold-offer"),
    Rule(slot="notice", condition="customer.segment.region == 'EU'", block="eu-notice"),
]


@pytest.fixture
def targeted():  # noqa: ANN201
    template = make_docx(["Dear {{ customer.name }},", "{{ slot('promotion') }}", "{{ slot('notice') }}", "Bye"])
    return compile_template(io.BytesIO(template), rules=RULES, blocks=blocks(**{
        "premium-offer": make_docx(["Premium: 20% off for {{ customer.name }}"]),
        "gold-offer": make_docx(["Gold: 10% off"]),
        "eu-notice": make_docx(["EU notice"]),
        "unused": make_docx(["never"]),
    }))


@pytest.mark.parametrize("segment, expected", [
    ({"tier": "premium", "region": "EU"}, ["Dear Ann,", "Premium: 20% off for Ann", "EU notice", "Bye"]),
    ({"tier": "gold"}, ["Dear Ann,", "Gold: 10% off", "Bye"]),
    ({"tier": "standard", "region": "UK"}, ["Dear Ann,", "Bye"]),
    (None, ["Dear Ann,", "Bye"]),
])
def test_slot_rules_choose_blocks_by_segment(targeted, segment: dict | None, expected: list[str]) -> None:  # noqa: ANN001
    customer = {"name": "Ann"} if segment is None else {"name": "Ann", "segment": segment}
    context = make_context({}, customer=customer, letter={"reference": "L-1"})
    assert text_of(render_one(targeted, context)).splitlines() == expected


def test_a_slot_without_rules_renders_nothing() -> None:
    template = make_docx(["Hello", "{{ slot('promotion') }}", "Bye"])
    compiled = compile_template(io.BytesIO(template), blocks={})
    assert text_of(render_one(compiled, {})).splitlines() == ["Hello", "Bye"]


@pytest.mark.parametrize("condition", ["customer.segment.tier == 'premium'", "age >= 18 and country in ['GB', 'IE']",
                                       "not customer.opted_out"])
def test_valid_conditions_pass(condition: str) -> None:
    check_condition(condition)


@pytest.mark.parametrize("condition, error", [
    ("customer.segment ==", TemplateSyntaxError),
    ("a b", TemplateSyntaxError),
    ("x %}{{ cycler }}{% if 1", TemplateSyntaxError),
    ("", TemplateSyntaxError),
    ("block('promo')", TemplateSyntaxError),
    ("customer.__class__", TemplateSecurityError),
    ("cycler.__init__.__globals__", TemplateSecurityError),
])
def test_bad_conditions_are_refused(condition: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        check_condition(condition)
    template = make_docx(["{{ slot('promotion') }}"])
    with pytest.raises(error):
        compile_template(io.BytesIO(template), blocks=blocks(b=make_docx(["B"])),
                         rules=[Rule(slot="promotion", condition=condition, block="b")])


def test_the_context_puts_data_at_the_top_and_reserves_three_names() -> None:
    context = make_context({"amount": 5}, customer={"name": "Ann"}, letter={"id": 1})
    assert context["amount"] == 5 and context["customer"] == {"name": "Ann"} and "today" in context
    with pytest.raises(DataValidationError) as caught:
        make_context({"customer": "me", "today": "x"}, customer={}, letter={})
    assert "customer" in caught.value.detail and "today" in caught.value.detail


DOCUMENT_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"


@pytest.mark.parametrize("content_type, kind", [
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml", ".dotx"),
    ("application/vnd.ms-word.document.macroEnabled.main+xml", ".docm"),
    ("application/vnd.ms-word.template.macroEnabledTemplate.main+xml", ".dotm"),
])
def test_word_templates_and_macro_documents_are_refused_at_check_in(content_type: str, kind: str) -> None:
    # Word's "Save as template" keeps word/document.xml; only the main part's content type tells them apart.
    docx = make_docx(["Dear {{ name }},", "{{ block('legal') }}"])
    types = member(docx, "[Content_Types].xml")
    assert DOCUMENT_MAIN in types
    other = with_member(docx, "[Content_Types].xml", types.replace(DOCUMENT_MAIN, content_type).encode())
    with pytest.raises(TemplateSyntaxError) as caught:
        inspect_template(io.BytesIO(other))
    assert kind in caught.value.detail and "Word Document (*.docx)" in caught.value.detail
    assert caught.value.extra["part"] == "word/document.xml"
    with pytest.raises(TemplateSyntaxError):  # and so never reaches python-docx, which raises ValueError on them
        compile_template(io.BytesIO(other), blocks=blocks(legal=make_docx(["Legal"])))
    with pytest.raises(TemplateSyntaxError, match=kind.replace(".", r"\.")):  # blocks are checked in the same way
        inspect_template(io.BytesIO(with_member(make_docx(["Legal"]), "[Content_Types].xml",
                                                types.replace(DOCUMENT_MAIN, content_type).encode())))


def test_a_template_python_docx_cannot_open_is_a_422_when_blocks_are_merged() -> None:
    # The styles part is named but missing: our own reading copes, python-docx raises KeyError.
    broken = with_member(make_docx(["Dear {{ name }},", "{{ block('legal') }}"]), "word/styles.xml", None)
    assert inspect_template(io.BytesIO(broken)).blocks == {"legal"}
    with pytest.raises(TemplateSyntaxError, match="cannot be opened as a Word document"):
        compile_template(io.BytesIO(broken), blocks=blocks(legal=make_docx(["Legal"])))


def test_the_size_limit_is_twenty_mib_and_exported() -> None:
    assert MAX_TEMPLATE_BYTES == 20 * 1024 * 1024
    with pytest.raises(TemplateSyntaxError, match="larger than 20 MiB"):
        inspect_template(io.BytesIO(b"PK" + b"\0" * MAX_TEMPLATE_BYTES))
    template = make_docx(["{{ block('legal') }}"])
    with pytest.raises(TemplateSyntaxError, match="'legal' is larger than 20 MiB") as caught:
        compile_template(io.BytesIO(template), blocks=blocks(legal=b"PK" + b"\0" * MAX_TEMPLATE_BYTES))
    assert caught.value.extra["block"] == "legal"


@pytest.mark.parametrize("tier, chosen", [("Gold  Plus", True), ("Gold Plus", False), ("Gold\nPlus", False)])
def test_rule_conditions_keep_the_spaces_in_their_strings(tier: str, chosen: bool) -> None:
    template = make_docx(["Dear {{ customer.name }},", "{{ slot('promotion') }}", "Bye"])
    rules = [Rule(slot="promotion", condition="customer.tier  ==\n  'Gold  Plus'\tand  true", block="offer")]
    compiled = compile_template(io.BytesIO(template), rules=rules, blocks=blocks(offer=make_docx(["Offer"])))
    lines = text_of(render_one(compiled, {"customer": {"name": "Ann", "tier": tier}})).splitlines()
    assert lines == (["Dear Ann,", "Offer", "Bye"] if chosen else ["Dear Ann,", "Bye"])


def test_a_line_break_in_a_condition_keeps_errors_on_the_right_paragraph() -> None:
    template = make_docx(["Dear {{ customer.name }},", "{{ slot('promotion') }}", "Share: {{ total / parts }}"])
    rules = [Rule(slot="promotion", condition="customer.note ==\n'two\nlines'", block="offer")]
    compiled = compile_template(io.BytesIO(template), rules=rules, blocks=blocks(offer=make_docx(["Offer"])))
    text = text_of(render_one(compiled, {"customer": {"name": "Ann", "note": "two\nlines"}, "total": 1, "parts": 1}))
    assert "Offer" in text
    with pytest.raises(RenderError) as caught:
        render_one(compiled, {"customer": {"name": "Ann"}, "total": 1, "parts": 0})
    assert caught.value.extra["paragraph"] == "Share: {{ total / parts }}"
