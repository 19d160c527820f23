"""The rendering sandbox: known escapes fail with TemplateSecurityError (or render harmlessly), data is escaped
for XML, and undefined values follow the documented policy."""

from __future__ import annotations

import io

import pytest

from correspondence.errors import RenderError, TemplateSecurityError
from correspondence.rendering import compile_template, inspect_template, render_one
from tests.correspondence.docx_factory import make_docx, member, text_of

ESCAPES = [
    "{{ cycler.__init__.__globals__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__['os'] }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ '{0.__class__}'.format(x) }}",
    "{{ x|attr('__class__') }}",
    "{{ joiner.__init__.__globals__.os.popen('id').read() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ x['__class__'] }}",
]
RUNTIME_ESCAPES = [
    "{{ x|attr('_' ~ '_class_' ~ '_') }}",
    "{{ ('{0.' ~ '_' ~ '_class_' ~ '_}').format(x) }}",
    "{{ dict.mro() }}",
    "{{ rows.append(1) }}",
    "{{ 'a' * 10000000 }}",
    "{{ 2 ** 100000000 }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ 'x'|center(999999999) }}",
]
HARMLESS = ["{{ config }}", "{{ request }}", "{{ settings.SECRET_KEY }}", "{{ '{0.real}'.format(x) }}"]
LEAKS = ("<function", "&lt;function", "globals", "<module", "&lt;module", "<class", "&lt;class", "subprocess", "os.")


def compile_text(*paragraphs: str):  # noqa: ANN201
    return compile_template(io.BytesIO(make_docx(list(paragraphs))), blocks={})


@pytest.mark.parametrize("payload", ESCAPES)
def test_known_escapes_are_refused_before_the_template_is_stored(payload: str) -> None:
    data = make_docx(["Dear customer,", payload])
    with pytest.raises(TemplateSecurityError) as caught:
        inspect_template(io.BytesIO(data))
    assert caught.value.extra["tag"] == payload.split("%}")[0] + "%}" if payload.startswith("{%") else payload
    assert "sandbox" in caught.value.detail
    with pytest.raises(TemplateSecurityError):
        compile_template(io.BytesIO(data), blocks={})


@pytest.mark.parametrize("payload", RUNTIME_ESCAPES)
def test_escapes_built_at_run_time_fail_when_rendered(payload: str) -> None:
    compiled = compile_text("Dear customer,", payload)
    with pytest.raises(TemplateSecurityError) as caught:
        render_one(compiled, {"x": 1, "rows": []})
    assert caught.value.extra["tag"] == payload
    assert caught.value.extra["paragraph"] == payload


@pytest.mark.parametrize("payload", HARMLESS)
def test_unknown_globals_render_as_nothing(payload: str) -> None:
    out = render_one(compile_text("Before " + payload + " after"), {"x": 1})
    xml = member(out, "word/document.xml")
    assert not any(leak in xml for leak in LEAKS)
    assert "Before" in text_of(out)


def test_data_is_escaped_for_xml() -> None:
    nasty = 'Smith & Sons <Ltd> "quoted" </w:t></w:r><w:r><w:t>injected'
    out = render_one(compile_text("To: {{ name }}", "Ref: {{ ref }}"), {"name": nasty, "ref": "a\x01b\x1fc"})
    text = text_of(out)  # python-docx parses it: the XML is valid
    assert f"To: {nasty}" in text
    assert "Ref: abc" in text  # control characters, invalid in XML, are dropped
    assert member(out, "word/document.xml").count("<w:p>") >= 2


def test_ampersands_and_word_quotes_typed_in_tags_work() -> None:
    # Word stores & as &amp; and turns quotes curly as you type; inside a tag both mean what was typed.
    out = render_one(compile_text("{{ \"Smith & Sons\" }} / {{ ‘it’ ~ “’s” }}"), {})
    assert "Smith & Sons / it's" in text_of(out)


def test_undefined_values_print_as_nothing_and_test_false() -> None:
    compiled = compile_text("Hello {{ customer.nickname }}{{ missing }}!",
                            "{% if middle_name %}Middle: {{ middle_name }}{% else %}No middle name{% endif %}",
                            "Tier: {{ customer.segment.tier }}.",
                            "{% for r in rows or [] %}{{ r }}{% endfor %}Optional list done")
    text = text_of(render_one(compiled, {"customer": {"name": "Ann"}}))
    assert "Hello !" in text
    assert "No middle name" in text
    assert "Tier: ." in text
    assert "Optional list done" in text


@pytest.mark.parametrize("paragraph, name", [
    ("{% for r in rows %}{{ r }}{% endfor %}", "rows"),
    ("Total {{ amount + 1 }}", "amount"),
    ("Owed {{ amount|money('GBP') }}", "amount"),
    ("{{ count|length }}", "count"),
    ("{{ helper() }}", "helper"),
])
def test_undefined_values_fail_where_a_value_is_needed(paragraph: str, name: str) -> None:
    compiled = compile_text("Dear customer,", paragraph)
    with pytest.raises(RenderError) as caught:
        render_one(compiled, {})
    assert f"'{name}' is undefined" in caught.value.detail
    assert caught.value.extra["paragraph"] == paragraph
    assert "Traceback" not in caught.value.detail


def test_errors_in_the_template_logic_are_render_errors_naming_the_paragraph() -> None:
    compiled = compile_text("Dear customer,", "Share: {{ total / parts }}")
    with pytest.raises(RenderError) as caught:
        render_one(compiled, {"total": 10, "parts": 0})
    assert "division by zero" in caught.value.detail
    assert caught.value.extra["tag"] == "{{ total / parts }}"
    assert caught.value.extra["paragraph"] == "Share: {{ total / parts }}"
