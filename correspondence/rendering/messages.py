"""Messages that go with a letter (an email's subject, text and HTML body; an SMS's text), rendered from their
authors' Jinja in the same sandbox as letters: the same bounded values and filters, the same refusal of unsafe
attribute access, no include/import/extends and no images. HTML bodies are autoescaped (a customer's name
cannot add markup); text bodies and subjects are not escaped, since nothing reads them as markup.

Pure, like the rest of the package: the caller stores the sources, builds the context and sends the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Template, nodes
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateSyntaxError as JinjaSyntaxError

from correspondence.errors import TemplateSyntaxError
from correspondence.rendering.compiler import parse_checked
from correspondence.rendering.locate import syntax_error
from correspondence.rendering.render import render_errors
from correspondence.rendering.sandbox import MIB, PIECE_COST, _make_environment
from correspondence.rendering.state import RenderState, active, resolve_locale

MAX_MESSAGE_SOURCE = 100_000  # characters of one part's Jinja source
MAX_MESSAGE_OUTPUT = MIB  # characters one part may render to
MESSAGE_SECONDS = 2.0  # the time limit of rendering one part (rendered when sent, and when saved, in a request)


def _environment(*, autoescape: bool):  # noqa: ANN202
    env = _make_environment(autoescape=autoescape)
    env.globals.pop("image", None)  # images belong in letters; a message links to the letter instead
    return env


_HTML, _TEXT = _environment(autoescape=True), _environment(autoescape=False)


@dataclass(frozen=True)
class CompiledMessage:
    """One part of a message (`part` names it in errors: subject, text, html), ready to render many times."""

    part: str
    source: str
    template: Template


def compile_message(source: str, *, part: str, html: bool = False) -> CompiledMessage:
    """Check and compile one part; TemplateSyntaxError / TemplateSecurityError (422s) say what is wrong and where."""
    if len(source) > MAX_MESSAGE_SOURCE:
        raise TemplateSyntaxError(f"the {part} is longer than {MAX_MESSAGE_SOURCE:,} characters", part=part)
    env = _HTML if html else _TEXT
    tree = parse_checked(source, part, env=env, no_includes="messages")
    for call in tree.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name in ("image", "block", "slot"):
            raise TemplateSyntaxError(f"{call.node.name}() is for letters, not for the {part} of a message",
                                      part=part, line=call.lineno)
    try:
        template = env.from_string(source)
    except JinjaSyntaxError as exc:  # an unknown filter or test
        raise syntax_error(env, exc, source, part) from None
    return CompiledMessage(part=part, source=source, template=template)


def render_message(message: CompiledMessage, context: Mapping[str, Any], *, locale: str | None = None) -> str:
    """The part rendered with `context` (filters format for `locale`); RenderError / TemplateSecurityError if the
    template fails with these values."""
    state = RenderState(locale=resolve_locale(locale), named_images={}, part=message.part,
                        time_limit=MESSAGE_SECONDS)
    room = MAX_MESSAGE_OUTPUT
    pieces: list[str] = []
    with active(state), render_errors(message.source, message.part, what=f"the {message.part}"):
        for piece in message.template.generate(context):
            room -= len(piece) + PIECE_COST
            if room < 0:
                raise SecurityError(f"the {message.part} is longer than {MAX_MESSAGE_OUTPUT // MIB} MiB")
            pieces.append(piece)
    return "".join(pieces)
