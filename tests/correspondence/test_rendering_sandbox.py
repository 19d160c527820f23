"""The rendering sandbox: known escapes fail with TemplateSecurityError (or render harmlessly), data is escaped
for XML, and undefined values follow the documented policy."""

from __future__ import annotations

import io
import time

import pytest

from correspondence.errors import RenderError, TemplateSecurityError, TemplateSyntaxError
from correspondence.rendering import compile_template, inspect_template, render_many, render_one
from correspondence.rendering.sandbox import MAX_OUTPUT, MAX_VALUE
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
    assert caught.value.extra["tag"] == (payload.split("%}")[0] + "%}" if payload.startswith("{%") else payload)
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


@pytest.mark.parametrize("payload", [
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "{% for a in range(100000) %}{% for b in range(100000) if b < 0 %}{% endfor %}{% endfor %}",  # loop filter
    "{% for a in range(100000) %}{% for c in text if c == 'y' %}{% endfor %}{% endfor %}",
    "{% for a in range(100000) %}{{ range(100000)|sort(reverse=true)|first }}{% endfor %}",  # a filter iterates
])
def test_loops_that_print_nothing_still_stop(payload: str) -> None:
    began = time.perf_counter()
    with pytest.raises(TemplateSecurityError, match="loop rounds"):
        render_one(compile_text("Dear customer,", payload), {"text": "x" * 99_999})
    assert time.perf_counter() - began < 10  # 10,000,000,000 rounds otherwise


def test_ordinary_loops_render_as_before() -> None:
    many = render_one(compile_text("{% for a in range(1000) %}{% if a % 2 %}x{% endif %}{% endfor %}"), {})
    assert "x" * 500 in text_of(many)  # ordinary loops are far below the limit


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


# Templates that would allocate gigabytes (or exponentially more) if memory were not bounded: the first ones are
# the review's, rendered at 4-5 MB scale before the fix; each must fail fast with a 422.
DOUBLE = "{% set a = 'x' * 100000 %}" + "".join(
    f"{{% set {n} = [{p}, {p}] %}}" for p, n in zip("abcdefghijklmnopqrst", "bcdefghijklmnopqrstu", strict=True))
MEMORY_BOMBS = [
    "{{ 'x'.center(5000000) }}",
    "{{ 'x'.ljust(5000000) }}",
    "{{ 'x'.rjust(5000000) }}",
    "{{ 'x'.zfill(5000000) }}",
    "{% set ns = namespace(s='x') %}{% for i in range(22) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "{{ ('x' * 100000)|replace('', ',' * 50) }}",
    "{{ ('x' * 100)|join(',' * 99999) }}",
    # the same through str methods, and other ways to grow a value
    "{{ ('x' * 100000).replace('', ',' * 50) }}",
    "{{ (',' * 99999).join('x' * 100) }}",
    "{{ ('x' * 100000).translate({120: 'y' * 100}) }}",
    "{{ ('\\t' * 100000).expandtabs(1000) }}",
    "{{ '{:>{}}'.format('x', 999999999) }}",
    "{{ '%.*f' % (999999999, 1) }}",
    "{{ '%s%s%s%s%s%s%s%s%s%s%s%s' % (('x' * 100000,) * 12) }}",
    "{{ '{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}'.format('x' * 100000) }}",
    "{% set a = 'x' * 100000 %}{% for i in range(30) %}{% set a = a + a %}{% endfor %}"
    "{% set a = a + a %}{% set a = a + a %}{% set a = a + a %}{% set a = a + a %}{{ a }}",
    "{% macro grow(s, n) %}{% if n %}{{ grow(s ~ s, n - 1) }}{% else %}{{ s }}{% endif %}{% endmacro %}"
    "{{ grow('x' * 1000, 40) }}",
    "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + ['x'] %}{% endfor %}",
    "{{ ([['x'] * 100000] * 100000)|sum(start=[])|length }}",
    "{{ [1]|batch(999999999, 0)|list }}",
    "{{ ('\\n' * 100000)|indent(1000) }}",
    "{{ ('x ' * 50000)|wordwrap(1, wrapstring='y' * 1000) }}",
    "{{ (10 ** 1000) ** 1000 }}",
    "{{ 'x'.encode() * 999999999 }}",
    "{{ 'x'.encode().center(999999999) }}",
    "{{ (1).to_bytes(999999999, 'big') }}",
    # lists that hold one value many times: small in memory, huge as text
    DOUBLE + "{{ u }}",
    DOUBLE + "{{ u ~ '' }}",
    DOUBLE + "{{ '%s' % (u,) }}",
    DOUBLE + "{{ '{}'.format(u) }}",
    DOUBLE + "{{ u|string }}",
    DOUBLE + "{{ u|tojson }}",
    DOUBLE + "{{ [u]|join }}",
    DOUBLE + "{{ u|number }}",
    # output and buffered text
    "{% for i in range(100000) %}{% for j in range(100000) %}{{ 'x' * 1000 }}{% endfor %}{% endfor %}",
    "{% set b %}{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxxxx{% endfor %}{% endfor %}"
    "{% endset %}",
    "{% macro m() %}{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxxxx{% endfor %}{% endfor %}"
    "{% endmacro %}{{ m()|length }}",
    "{% filter upper %}{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
    "{% endfilter %}",
    "{% if false %}{% block b %}{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
    "{% endblock %}{% endif %}{{ self.b()|length }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "{% for i in range(300) %}{{ '\\t' * 100000 }}{% endfor %}",  # docxtpl makes each tab a run
]


@pytest.mark.parametrize("payload", MEMORY_BOMBS)
def test_templates_cannot_exhaust_memory(payload: str) -> None:
    compiled = compile_text("Dear customer,", payload)
    started = time.perf_counter()
    with pytest.raises((TemplateSecurityError, RenderError)) as caught:
        render_one(compiled, {})
    assert time.perf_counter() - started < 2
    assert "Traceback" not in caught.value.detail
    assert caught.value.extra["part"] == "word/document.xml"


def test_a_limit_reached_while_printing_names_the_paragraph() -> None:
    payload = "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}"
    with pytest.raises(TemplateSecurityError) as caught:
        render_one(compile_text("Dear customer,", payload), {})
    assert f"{MAX_OUTPUT // (1024 * 1024)} MiB" in caught.value.detail
    assert caught.value.extra["paragraph"] == payload


def test_ordinary_uses_of_the_bounded_operations_still_work() -> None:
    compiled = compile_text(
        "[{{ 'ab'.center(6, '*') }}|{{ 'ab'.ljust(4, '.') }}|{{ '7'.zfill(3) }}|{{ 'a\\tb'.expandtabs(2) }}]",
        "{% set ns = namespace(names='') %}{% for r in rows %}{% set ns.names = ns.names ~ r.name ~ ';' %}"
        "{% endfor %}{{ ns.names }}",
        "{{ rows|join(', ', attribute='name') }} / {{ '-'.join(['a', 'b']) }} / {{ 'a-b'|replace('-', '+') }}",
        "{{ 'x' * 3 }} {{ [1] + [2] }} {{ 'a' + 'b' }} {{ 2 ** 10 }} {{ 12 * 12 }} {{ '%05.1f|%s' % (3.14159, 'y') }}",
        "{{ '{:>5}|{:.2f}'.format('r', 2.5) }} {{ rows|map(attribute='n')|sum }} {{ [[1], [2]]|sum(start=[]) }}",
        "{% macro hello(n) %}Hi {{ n }}{% endmacro %}{% set greeting %}{{ hello('Ann') }}!{% endset %}{{ greeting }}",
        "{{ rows|batch(2)|list|length }} {{ rows|slice(2)|list|length }} {{ 'a b c'|wordwrap(3, wrapstring='/') }}",
        "{{ rows|map(attribute='name')|list }}")
    rows = [{"name": "Ann", "n": 1}, {"name": "Bo", "n": 2}, {"name": "Cy", "n": 3}]
    lines = text_of(render_one(compiled, {"rows": rows})).splitlines()
    assert lines[0] == "[**ab**|ab..|007|a b]"
    assert lines[1] == "Ann;Bo;Cy;"
    assert lines[2] == "Ann, Bo, Cy / a-b / a+b"
    assert lines[3] == "xxx [1, 2] ab 1024 144 003.1|y"
    assert lines[4] == "    r|2.50 6 [1, 2]"
    assert lines[5] == "Hi Ann!"
    assert lines[6] == "2 2 a b/c"
    assert lines[7] == "['Ann', 'Bo', 'Cy']"


def test_long_data_can_still_be_printed_and_passed_on() -> None:
    # The limits are on what a template makes; a long text in the data is the caller's business.
    notes = "n" * (MAX_VALUE + 10)
    compiled = compile_text("{{ notes }}", "{{ notes|default('') }}", "{{ d.get('notes') }}", "{{ [notes]|first }}")
    xml = member(render_one(compiled, {"notes": notes, "d": {"notes": notes}}), "word/document.xml")
    assert xml.count(notes) == 4


def test_each_letter_of_a_batch_has_its_own_budget() -> None:
    # Each letter makes 20 Mi characters (under MAX_BUILT); the batch as a whole makes 60 Mi.
    compiled = compile_text("Letter {{ n }}{% for i in range(200) %}{% set s = 'x' * 100000 %}{% endfor %}")
    batch = render_many(compiled, [{"n": i} for i in range(3)])
    assert [item.index for item in batch.letters] == [0, 1, 2]


def test_namespace_attributes_are_bounded() -> None:
    # Values the template makes are bounded where they are made; these come from the data.
    big = {"big": "x" * (MAX_VALUE + 1), "many": list(range(MAX_VALUE + 1))}
    for payload in ("{% set ns = namespace() %}{% set ns.s = big %}", "{% set ns = namespace(s=big) %}",
                    "{% set ns = namespace() %}{% for i in [1] %}{% set ns.l = many %}{% endfor %}"):
        with pytest.raises(TemplateSecurityError, match="namespace"):
            render_one(compile_text(payload), big)
    text = text_of(render_one(compile_text("{% set ns = namespace(s=big) %}{{ ns.s|length }}"), {"big": "x" * 10}))
    assert "10" in text


def test_urlize_is_not_available_and_unknown_filters_are_syntax_errors() -> None:
    # urlize's HTML links would break the document's XML; an unknown filter is a 422 at check-in, not a 500
    for payload in ("{{ 'see https://example.com'|urlize }}", "{{ name|no_such_filter }}"):
        data = make_docx(["Dear customer,", payload])
        with pytest.raises(TemplateSyntaxError, match="No filter named") as caught:
            inspect_template(io.BytesIO(data))
        assert caught.value.extra["tag"] == payload
        with pytest.raises(TemplateSyntaxError):
            compile_template(io.BytesIO(data), blocks={})
