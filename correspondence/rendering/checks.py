"""Static checks on templates and targeting-rule conditions: private attribute access found by parsing (before
anything is stored), and a rule's condition parsed, checked and put on one line for the slot's `{% if %}`."""

from __future__ import annotations

import re

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError as JinjaSyntaxError
from jinja2.parser import Parser

from correspondence.errors import TemplateSecurityError, TemplateSyntaxError
from correspondence.rendering.sandbox import COMPILE_ONLY_GLOBALS, ENV

_DELIMITERS = ("{{", "}}", "{%", "%}", "{#", "#}")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

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


def condition_source(expression: str) -> str:
    """A checked condition on one line, for the slot's `{% if %}`: whitespace between tokens becomes one space, and
    line breaks inside string literals become \\n escapes, so 'Gold  Plus' keeps both its spaces and the template's
    line numbers (which locate errors) stay right."""
    out = []
    for _line, kind, value in ENV.lexer.tokeniter(expression, None, state="variable"):
        if kind == "whitespace":
            out.append(" ")
        elif kind == "string":
            out.append(_LINE_BREAK.sub(r"\\n", value))
        else:
            out.append(value)
    return "".join(out).strip()


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
