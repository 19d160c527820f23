"""The Jinja environment letters render in: sandboxed, autoescaping for XML, with a lenient-but-honest Undefined.

Undefined policy (missing optional fields are common; the caller validates data against the template's JSON
Schema before rendering, so what is left missing is optional):
- printing an undefined value gives nothing, `{% if x %}` is false, `x is defined` works, and attribute access on
  it chains (`customer.segment.tier` with no segment is undefined, not an error);
- iterating it (`{% for r in rows %}`), taking its length, calling it, doing arithmetic or comparisons with it,
  and passing it to `date`, `money`, `number`, `percent` or `image()` fail with RenderError: a table with no rows
  or an amount of "" is a wrong letter, not an optional one. Write `{% for r in rows or [] %}` or
  `{% if rows %}` when a list is optional.

Security: `ImmutableSandboxedEnvironment`; templates are also checked statically (before they are stored) for
access to underscore attributes, and unsafe access at run time raises instead of yielding an undefined value.
Repetition (`*`, `**`) and format widths are bounded so an approved template cannot allocate gigabytes; CPU
time is not bounded (templates are authored and approved by staff).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NoReturn

from jinja2 import ChainableUndefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateSyntaxError as JinjaSyntaxError
from jinja2.filters import do_center, do_indent
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from correspondence.errors import TemplateSecurityError, TemplateSyntaxError
from correspondence.rendering.filters import FILTERS
from correspondence.rendering.images import image

MAX_REPEAT = 100_000
MAX_EXPONENT = 1_000
MAX_WIDTH = 1_000
_INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_WIDE_FORMAT = re.compile(r"%[-+ #0]*(?:\*|\d{4,})|\{[^{}]*:[^{}]*\d{4,}[^{}]*\}")
_DELIMITERS = ("{{", "}}", "{%", "%}", "{#", "#}")


class LetterUndefined(ChainableUndefined):
    """Prints as nothing and chains attribute access; fails when iterated, measured, called or computed with."""

    __slots__ = ()

    def __iter__(self) -> Iterator[Any]:
        self._fail_with_undefined_error()

    def __len__(self) -> int:
        self._fail_with_undefined_error()


def _finalize(value: Any) -> Any:
    # Control characters are not allowed in XML 1.0: a stray one in the data would make the DOCX unreadable.
    if isinstance(value, str) and not isinstance(value, Markup) and _INVALID_XML_CHARS.search(value):
        return _INVALID_XML_CHARS.sub("", value)
    return value


def _bounded(width: Any) -> None:
    if isinstance(width, int) and width > MAX_WIDTH:
        raise SecurityError(f"a width of {width} is more than the sandbox allows ({MAX_WIDTH})")


def _center(value: str, width: int = 80) -> str:
    _bounded(width)
    return do_center(value, width)


def _indent(value: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    _bounded(width)
    if isinstance(width, str) and len(width) > MAX_WIDTH:
        raise SecurityError("the indent is longer than the sandbox allows")
    return do_indent(value, width, first, blank)


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    if _WIDE_FORMAT.search(str(value)):
        raise SecurityError("a format width of more than 999 is not allowed in letters")
    return str(value) % (kwargs or args)


class LetterEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with bounded repetition and formatting, and unsafe access as an error."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Refuse operations whose result could exhaust memory."""
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"an exponent of {right} is more than the sandbox allows")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > MAX_REPEAT:
                    raise SecurityError("repeating a value that many times is more than the sandbox allows")
        if operator == "%" and isinstance(left, str) and _WIDE_FORMAT.search(left):
            raise SecurityError("a format width of more than 999 is not allowed in letters")
        return super().call_binop(context, operator, left, right)

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        """Unsafe access is an error here, not a silently undefined value."""
        raise SecurityError(f"access to the attribute {attribute!r} of a {type(obj).__name__} value is not allowed")

    def wrap_str_format(self, value: Any) -> Any:
        """Bound the widths of str.format as well."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        if _WIDE_FORMAT.search(value.__self__):
            raise SecurityError("a format width of more than 999 is not allowed in letters")
        return wrapped


def _make_environment() -> LetterEnvironment:
    env = LetterEnvironment(autoescape=True, undefined=LetterUndefined, finalize=_finalize, auto_reload=False,
                            cache_size=0, keep_trailing_newline=True)
    env.globals.pop("lipsum", None)
    env.globals["image"] = image
    env.filters.update(FILTERS)
    env.filters.update(center=_center, indent=_indent, format=_format)
    return env


ENV = _make_environment()
COMPILE_ONLY_GLOBALS = frozenset({"block", "slot"})
KNOWN_GLOBALS = frozenset(ENV.globals) | COMPILE_ONLY_GLOBALS


def unsafe_access(tree: nodes.Node) -> tuple[str, int] | None:
    """The first access to a private attribute in a parsed template: (what, line), or None."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Const, nodes.Filter)):
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            return f"the attribute {node.attr!r}", node.lineno
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and isinstance(node.arg.value, str) and node.arg.value.startswith("_"):
            return f"the item {node.arg.value!r}", node.lineno
        if isinstance(node, nodes.Const) and isinstance(node.value, str) and "__" in node.value:
            return f"the string {node.value[:60]!r}, which names a private attribute", node.lineno
        if isinstance(node, nodes.Filter) and node.name == "attr" and node.args \
                and isinstance(node.args[0], nodes.Const) and str(node.args[0].value).startswith("_"):
            return f"the attribute {node.args[0].value!r}", node.lineno
    return None


def parse_expression(expression: str) -> nodes.Expr:
    """Parse one Jinja expression (a rule condition); TemplateSyntaxError if it is not exactly one."""
    if not isinstance(expression, str) or not expression.strip():
        raise TemplateSyntaxError("a condition must be a Jinja expression, for example customer.segment == 'premium'",
                                  tag=expression, paragraph="")
    if len(expression) > 2000:
        raise TemplateSyntaxError("a condition may be at most 2,000 characters long", tag=expression[:200],
                                  paragraph="")
    if any(d in expression for d in _DELIMITERS):
        raise TemplateSyntaxError("a condition is an expression without {{ }} or {% %} around it",
                                  tag=expression[:200], paragraph="")
    try:
        parser = Parser(ENV, expression, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            raise JinjaSyntaxError("the condition has text after its end", parser.stream.current.lineno)
    except JinjaSyntaxError as exc:
        raise TemplateSyntaxError(f"the condition does not parse: {exc.message}", tag=expression[:200],
                                  paragraph="") from None
    return expr


def check_condition(expression: str) -> None:
    """Check a targeting rule's condition: one expression, no private attributes, no block()/slot()."""
    expr = nodes.Output([parse_expression(expression)])  # find_all() looks below a node, not at it
    found = unsafe_access(expr)
    if found:
        raise TemplateSecurityError(f"the condition reads {found[0]}, which the rendering sandbox forbids",
                                    tag=expression[:200], paragraph="")
    for call in expr.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name in COMPILE_ONLY_GLOBALS:
            raise TemplateSyntaxError(f"a condition may not call {call.node.name}()", tag=expression[:200],
                                      paragraph="")
