"""Message parts (email subject, text, HTML; SMS text) in the letters' sandbox: escaping by kind, filters in the
customer's locale, and the same limits as letters."""

from __future__ import annotations

import pytest

from correspondence.errors import RenderError, TemplateSecurityError, TemplateSyntaxError
from correspondence.rendering.messages import MAX_MESSAGE_SOURCE, compile_message, render_message

CUSTOMER = {"name": "Ada & <Co>", "locale": "de-DE"}


def test_html_is_escaped_and_text_is_not() -> None:
    source = "Hello {{ customer.name }}"
    assert render_message(compile_message(source, part="html", html=True), {"customer": CUSTOMER}) == \
        "Hello Ada &amp; &lt;Co&gt;"
    assert render_message(compile_message(source, part="text"), {"customer": CUSTOMER}) == "Hello Ada & <Co>"


def test_filters_format_for_the_locale_given() -> None:
    message = compile_message("{{ amount|money('EUR') }}", part="text")
    assert render_message(message, {"amount": 1234.5}, locale="de-DE") == "1.234,50\xa0€"
    assert render_message(message, {"amount": 1234.5}, locale="en-GB") == "€1,234.50"


def test_letters_only_features_are_refused_when_compiled() -> None:
    for source in ("{{ image('logo') }}", "{{ block('footer') }}", "{% import 'x' as y %}"):
        with pytest.raises(TemplateSyntaxError):
            compile_message(source, part="text")
    with pytest.raises(TemplateSyntaxError, match="longer than"):
        compile_message("x" * (MAX_MESSAGE_SOURCE + 1), part="text")
    with pytest.raises(TemplateSecurityError):
        compile_message("{{ customer.__init__ }}", part="subject")


def test_a_message_that_loops_forever_is_stopped() -> None:
    message = compile_message("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
                              part="subject")
    with pytest.raises(TemplateSecurityError, match="loop rounds"):
        render_message(message, {})


def test_a_message_that_takes_too_long_is_stopped(monkeypatch) -> None:  # noqa: ANN001
    from correspondence.rendering import messages

    monkeypatch.setattr(messages, "MESSAGE_SECONDS", 0.01)
    slow = compile_message("{% for a in range(100000) %}{% if a < 0 %}x{% endif %}{% endfor %}", part="html")
    with pytest.raises(TemplateSecurityError, match="longer than 0.01 s"):
        render_message(slow, {})


def test_a_message_that_grows_too_big_is_stopped_where_it_grows() -> None:
    message = compile_message("{% for i in range(3000) %}{{ 'x' * 1000 }}{% endfor %}", part="text")
    with pytest.raises(TemplateSecurityError, match="longer than"):
        render_message(message, {})
    with pytest.raises(RenderError) as caught:
        render_message(compile_message("ok\n{{ 1 / zero }}", part="subject"), {"zero": 0})
    assert caught.value.extra["line"] == 2 and "the subject could not be rendered" in caught.value.detail
