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
The `urlize` filter is not available (its HTML links would break the document's XML).

Memory. Any author can preview a draft, so a template must not be able to exhaust the server's memory. Every
limit below fails with TemplateSecurityError (a 422), before the memory is taken unless it says otherwise:
- Output: the XML of one letter, all its parts together (body, headers, footers, notes), is at most MAX_OUTPUT
  (20 MiB) characters. It is counted as Jinja generates it (`render._generate`), each piece costing PIECE_COST
  (16) more for the list that holds it, and the tabs, line breaks, \\a and \\f in it are counted at the size of
  the runs docxtpl turns them into. In a batch the limit is per letter.
- Values: a string, list, tuple or dict the template makes is at most MAX_VALUE (1 Mi) characters or items.
  Checked before they run: `*` (also at most MAX_REPEAT), `+`, `~`, `%`, `str.format`/`format_map`; the str and
  bytes methods center, ljust, rjust, zfill and expandtabs (widths at most MAX_WIDTH), replace, join and
  translate, and int.to_bytes; the filters replace, join, wordwrap, indent, center and format (widths as for the
  methods), sum, batch and slice. Other filters, and the methods of strings, bytes and dates, whose results are
  at most a few times their input (upper, escape, string, split, strftime...), are checked just after they run.
  Filters that pass on a value they were given (default, first, attr...) and other calls (`d.get('x')`) make
  nothing new and are not limited, so data longer than MAX_VALUE can still be printed. Integers made by `*` and
  `**` have at most MAX_INT_BITS bits.
- Text of containers: a list or dict can hold one value many times (`[a, a]`), so its text can be far larger than
  its memory. Printing one, and `~`, `%`, `format`, `join` and the filters that turn their input into text, are
  refused when the text would exceed MAX_VALUE characters (measured with `text_size`, which stops counting there).
- Total: everything made while one letter renders counts against MAX_BUILT (32 Mi) characters or items: the
  values above, what other calls return, and the text of `{% set %}` blocks, macros, call and filter blocks and
  `self.<block>()` (PIECE_COST more per piece). So a loop cannot grow a value round after round: a `namespace`
  attribute doubled in a loop is refused by `~` at 1 Mi, one grown a little each round by this budget.
- `namespace()` attributes hold at most MAX_VALUE characters or items each.
- Steps and time: every run of a block body (a loop round, an `if` branch taken, a macro or call block) and every
  item a loop or `range()` hands out (loop filters and filters like `|sort` included) counts against
  steps.MAX_STEPS (1,000,000) per letter, and each step checks the letter's time limit (RenderState.time_limit,
  state.MAX_SECONDS by default; message templates, which no approver reads before they are sent, get less). So a
  loop that prints nothing still stops, and so does a loop whose every round is slow.
Not bounded: the CPU time of one operation between two steps (what it can make is bounded by the limits above, so
it is a fraction of a second); the memory of parsing and compiling a template, which grows with its size
(MAX_TEMPLATE_BYTES in the compiler), and list, tuple and dict literals, which hold only references and are as many
as the template writes; the caller's data; the few times MAX_VALUE that one operation may take before its result is
checked (escaping 1 Mi ampersands makes 5 Mi characters); and a batch as a whole (render_many holds up to
MAX_OUTPUT per letter, times the number of letters, in memory unless it is given a file to write to).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from decimal import Decimal
from functools import update_wrapper
from types import BuiltinMethodType, MethodType
from typing import Any, NoReturn

from jinja2 import ChainableUndefined, Undefined, nodes, pass_environment, pass_eval_context
from jinja2.compiler import CodeGenerator, CompilerExit, Frame, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.filters import (
    do_batch,
    do_center,
    do_indent,
    do_replace,
    do_tojson,
    do_wordwrap,
    make_attrgetter,
    sync_do_join,
    sync_do_slice,
)
from jinja2.runtime import Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from markupsafe import Markup

from correspondence.rendering.filters import FILTERS
from correspondence.rendering.images import image
from correspondence.rendering.state import active_state
from correspondence.rendering.steps import counted_range, step

MIB = 1024 * 1024
MAX_OUTPUT = 20 * MIB
MAX_VALUE = MIB
MAX_BUILT = 32 * MIB
MAX_REPEAT = 100_000
MAX_EXPONENT = 1_000
MAX_WIDTH = 1_000
MAX_INT_BITS = 65_536
PIECE_COST = 16  # what a piece of output or buffered text costs beyond its characters (the list slot holding it)
_INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# %-formats with a width or precision of 4+ digits or from an argument (*); {}-formats with 4+ digits after the
# colon or a nested field ({:{}}) that takes the width from an argument.
_WIDE_FORMAT = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(?:\*|\d{4,}|\d*\.(?:\*|\d{4,}))|\{[^{}]*:[^{}]*(?:\d{4,}|\{)")
_SIZED = (str, bytes, list, tuple, dict, set, frozenset)
_SEQUENCES = (str, bytes, list, tuple)
_PLAIN = (int, float, Decimal, dt.date, dt.time, Undefined, type(None))
# Filters that return (part of) a value they were given, so their result is neither checked nor counted again.
_PASSING_ON = frozenset({"attr", "d", "default", "first", "last", "max", "min", "random"})
# Methods of these make new text (str.upper, date.strftime...): their results are checked and counted.
_TEXT_OWNERS = (str, bytes, dt.date, dt.time)
_CHECKED_OWNERS = (str, bytes, int)
# Filters that turn their input into text, so a container's text size is checked first.
_STRINGIFYING = frozenset({"capitalize", "center", "e", "escape", "forceescape", "format", "indent", "join",
                           "lower", "pprint", "replace", "safe", "string", "striptags", "title", "tojson", "trim",
                           "truncate", "upper", "urlencode", "wordcount", "wordwrap", "xmlattr"})


class LetterUndefined(ChainableUndefined):
    """Prints as nothing and chains attribute access; fails when iterated, measured, called or computed with."""

    __slots__ = ()

    def __iter__(self) -> Iterator[Any]:
        self._fail_with_undefined_error()

    def __len__(self) -> int:
        self._fail_with_undefined_error()


def _too_big(what: str) -> SecurityError:
    return SecurityError(f"{what} would be more than {MAX_VALUE:,} characters (or items), more than the sandbox "
                         "allows")


def text_size(value: Any, limit: int = MAX_VALUE) -> int:
    """At least the length of `str(value)` (of what str.format makes of it), or limit + 1 once it is more.

    Containers are walked, each item counted wherever it recurs, and the walk stops at `limit`: a list holding
    one list twice, nested thirty times, is measured in a few steps, not in 2**30."""
    if isinstance(value, str):
        return len(value)
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 4
        elif isinstance(item, (bytes, bytearray)):
            total += 4 * len(item) + 4
        elif isinstance(item, Undefined):
            pass
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 4
        elif isinstance(item, Decimal):
            total += 32 + (abs(item.adjusted()) if item.is_finite() else 0)  # '{:f}' writes every zero
        elif isinstance(item, Mapping):
            total += 4
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, Namespace):
            total += 16
            attrs = object.__getattribute__(item, "_Namespace__attrs")
            stack.extend(attrs.keys())
            stack.extend(attrs.values())
        elif isinstance(item, range):
            total += 32
        elif isinstance(item, Collection):
            total += 4
            stack.extend(item)
        else:
            total += 32
        if total > limit:
            return limit + 1
    return total


def _check_text(value: Any, what: str = "the text of this value") -> None:
    if text_size(value) > MAX_VALUE:
        raise _too_big(what)


def _largest_text(values: Iterable[Any]) -> int:
    return max((text_size(v) for v in values), default=0)


def _estimate(size: int, what: str) -> None:
    if size > MAX_VALUE:
        raise _too_big(what)


def _spend(amount: int) -> None:
    """Count `amount` characters or items made while the current letter renders against MAX_BUILT."""
    state = active_state()
    if state is not None:
        state.built += amount
        if state.built > MAX_BUILT:
            raise SecurityError(f"the template makes more than {MAX_BUILT // MIB} Mi characters of text and values "
                                "while rendering one letter, more than the sandbox allows")


def _made(value: Any, what: str = "the result") -> Any:
    """Check and count a value the template made."""
    if isinstance(value, _SIZED):
        size = len(value)
        if size > MAX_VALUE:
            raise _too_big(what)
        _spend(size)
    return value


def _bounded(width: Any) -> None:
    if isinstance(width, int) and width > MAX_WIDTH:
        raise SecurityError(f"a width of {width} is more than the sandbox allows ({MAX_WIDTH})")


def _check_wide(fmt: str) -> None:
    if _WIDE_FORMAT.search(fmt):
        raise SecurityError("a format width or precision of more than 999, or one given as an argument, is not "
                            "allowed in letters")


def _percent_args(right: Any) -> Iterable[Any]:
    # A mapping's text is at least as long as any of its values, so '%(a)s' and '%s' are both covered.
    return right if isinstance(right, tuple) else (right,)


def _replaced_size(text_len: int, old: Any, new: Any, count: Any) -> int:
    old_len = len(old) if isinstance(old, str) else 0
    new_len = text_size(new)
    if new_len <= old_len:
        return text_len
    hits = text_len + 1 if old_len == 0 else text_len // old_len
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        hits = min(hits, count)
    return text_len + hits * (new_len - old_len)


def _joined_size(separator: Any, items: list[Any]) -> int:
    total = text_size(separator) * max(len(items) - 1, 0)
    for item in items:
        total += text_size(item)
        if total > MAX_VALUE:
            break
    return total


def _check_method(owner: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a str or bytes method call whose result would be too big (and int.to_bytes of a huge length); the
    arguments to call it with (join's iterable is made a list to be measured)."""
    if isinstance(owner, int):
        if name == "to_bytes":
            length = args[0] if args else kwargs.get("length", 1)
            if isinstance(length, int) and length > MAX_VALUE:
                raise _too_big("the bytes")
        return args
    text = owner if isinstance(owner, str) else owner.decode("latin-1")
    if name in ("center", "ljust", "rjust", "zfill"):
        _bounded(args[0] if args else kwargs.get("width"))
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        _bounded(size)
        if isinstance(size, int):
            _estimate(len(text) + text.count("\t") * size, "expanding the tabs")
    elif name == "replace" and len(args) >= 2:
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        old = args[0] if isinstance(args[0], str) else args[0].decode("latin-1") if isinstance(args[0], bytes) else ""
        _estimate(_replaced_size(len(text), old, args[1], count), "the replacement")
    elif name == "join" and args:
        items = list(args[0])
        _estimate(_joined_size(owner, items), "the joined text")
        args = (items, *args[1:])
    elif name == "translate" and args and isinstance(owner, str):
        table = args[0]
        values = table.values() if isinstance(table, Mapping) else table if isinstance(table, Collection) else ()
        _estimate(len(owner) * max(_largest_text(values), 1), "the translated text")
    return args


class LetterNamespace(Namespace):
    """`namespace()` whose attributes hold at most MAX_VALUE characters or items each."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # noqa: N805 - as Namespace, so `self` can be an attribute
        self, args = args[0], args[1:]
        for value in dict(*args, **kwargs).values():
            _held(value)
        Namespace.__init__(self, *args, **kwargs)

    def __setitem__(self, name: str, value: Any) -> None:
        _held(value)
        Namespace.__setitem__(self, name, value)


def _held(value: Any) -> None:
    if isinstance(value, _SIZED) and len(value) > MAX_VALUE:
        raise _too_big("a namespace attribute")


class _Buffer(list):  # type: ignore[type-arg]
    """The buffer of a set block, macro, call or filter block, counting its text against MAX_BUILT."""

    __slots__ = ()

    def append(self, item: str) -> None:  # type: ignore[override]
        if item:
            _spend(len(item) + PIECE_COST)
            list.append(self, item)

    def extend(self, items: Iterable[str]) -> None:  # type: ignore[override]
        for item in items:
            self.append(item)


def _counted(pieces: Iterable[str]) -> Iterator[str]:
    for piece in pieces:
        if piece:
            _spend(len(piece) + PIECE_COST)
            yield piece


class LetterCodeGenerator(CodeGenerator):
    """Jinja's code generator with counted buffers, counted block runs and `~` checked before it joins."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:  # noqa: N802 - Jinja's visitor name
        """A loop over `environment.counted(...)`, so each item costs a step even when the loop's filter skips it."""
        counted = nodes.Call(nodes.EnvironmentAttribute("counted"), [node.iter], [], None, None, lineno=node.lineno)
        super().visit_For(nodes.For(node.target, counted, node.body, node.else_, node.test, node.recursive,
                                    lineno=node.lineno), frame)

    def blockvisit(self, body: Iterable[nodes.Node], frame: Frame) -> None:
        """Every block body starts by counting a step (MAX_STEPS), where Jinja writes `pass`."""
        try:
            self.writeline("environment.step()")
            for node in body:
                self.visit(node, frame)
        except CompilerExit:
            pass

    def buffer(self, frame: Frame) -> None:
        """Buffers count what is written to them (MAX_BUILT)."""
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.new_buffer()")

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802 - Jinja's visitor name
        """`a ~ b` as Jinja compiles it, through LetterEnvironment.concat_values."""
        if frame.eval_ctx.volatile:
            func_name = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            func_name = "markup_join"
        else:
            func_name = "str_join"
        self.write(f"environment.concat_values({func_name}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


# Filters replaced by bounded versions (the rest are wrapped by _guard_filter only).

def _center(value: str, width: int = 80) -> str:
    _bounded(width)
    return do_center(value, width)


def _indent(value: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    _bounded(width)
    if isinstance(width, str) and len(width) > MAX_WIDTH:
        raise SecurityError("the indent is longer than the sandbox allows")
    pad = len(width) if isinstance(width, str) else width if isinstance(width, int) and width > 0 else 0
    size = text_size(value)
    lines = (value.count("\n") if isinstance(value, str) else size) + 1
    _estimate(size + lines * pad, "the indented text")
    return do_indent(value, width, first, blank)


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    fmt = str(value)
    _check_wide(fmt)
    _estimate(len(fmt) + fmt.count("%") * _largest_text(_percent_args(kwargs or args)), "the formatted text")
    return fmt % (kwargs or args)


@pass_eval_context
def _replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    _estimate(_replaced_size(text_size(s), old, new, count), "the replacement")
    return do_replace(eval_ctx, s, old, new, count)


@pass_eval_context
def _join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: str | int | None = None) -> str:
    if attribute is not None:
        value = map(make_attrgetter(eval_ctx.environment, attribute), value)
    items = list(value)
    _estimate(_joined_size(d, items), "the joined text")
    return sync_do_join(eval_ctx, items, d)


@pass_environment
def _wordwrap(environment: Any, s: str, width: int = 79, break_long_words: bool = True,
              wrapstring: str | None = None, break_on_hyphens: bool = True) -> str:
    size = text_size(s)
    _estimate(size + (size + 1) * text_size(wrapstring if wrapstring is not None else environment.newline_sequence),
              "the wrapped text")
    return do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


@pass_environment
def _sum(environment: Any, iterable: Iterable[Any], attribute: str | int | None = None, start: Any = 0) -> Any:
    if attribute is not None:
        iterable = map(make_attrgetter(environment, attribute), iterable)
    items = list(iterable)
    if isinstance(start, (list, tuple)):
        _estimate(len(start) + sum(len(i) for i in items if isinstance(i, (list, tuple))), "the sum of the lists")
    return sum(items, start)


def _batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Iterator[list[Any]]:
    if isinstance(linecount, int) and linecount > MAX_REPEAT:
        raise SecurityError(f"batches of more than {MAX_REPEAT:,} items are more than the sandbox allows")
    return do_batch(value, linecount, fill_with)


def _slice(value: Collection[Any], slices: int, fill_with: Any = None) -> Iterator[list[Any]]:
    if isinstance(slices, int) and slices > MAX_REPEAT:
        raise SecurityError(f"more than {MAX_REPEAT:,} slices are more than the sandbox allows")
    return sync_do_slice(value, slices, fill_with)


@pass_eval_context
def _tojson(eval_ctx: Any, value: Any, indent: int | None = None) -> Markup:
    if indent is not None:
        raise SecurityError("tojson takes no indent in letters")
    return do_tojson(eval_ctx, value)


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """The filter with its input's text size checked (if it turns its input into text) and its result counted."""
    at = 0 if getattr(func, "jinja_pass_arg", None) is None else 1
    stringifies = name in _STRINGIFYING
    what = f"the result of the {name} filter"
    if name in _PASSING_ON:
        return func

    def guarded(*args: Any, **kwargs: Any) -> Any:
        value = args[at] if len(args) > at else None
        if stringifies and not isinstance(value, str):
            _check_text(value, f"the text of the value given to the {name} filter")
        result = func(*args, **kwargs)
        return result if result is value else _made(result, what)

    return update_wrapper(guarded, func)  # keeps jinja_pass_arg


def _finalize(value: Any) -> Any:
    if isinstance(value, str):
        # Control characters are not allowed in XML 1.0: a stray one in the data would make the DOCX unreadable.
        if not isinstance(value, Markup) and _INVALID_XML_CHARS.search(value):
            return _INVALID_XML_CHARS.sub("", value)
        return value
    if not isinstance(value, _PLAIN):
        _check_text(value, "the printed value")
    return value


class LetterEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with bounded values, text, output and formatting, and unsafe access as an error."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = LetterCodeGenerator

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Refuse operations whose result could exhaust memory; count the rest."""
        if operator == "+":
            if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
                _estimate(len(left) + len(right), "adding these values")
        elif operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, _SEQUENCES) and isinstance(times, int) and len(seq) * times > MAX_REPEAT:
                    raise SecurityError("repeating a value that many times is more than the sandbox allows")
            if isinstance(left, int) and isinstance(right, int) \
                    and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise SecurityError("multiplying numbers that large is more than the sandbox allows")
        elif operator == "**":
            if isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"an exponent of {right} is more than the sandbox allows")
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() * right > MAX_INT_BITS:
                raise SecurityError("raising a number that large to that power is more than the sandbox allows")
        elif operator == "%" and isinstance(left, (str, bytes)):
            _check_wide(left if isinstance(left, str) else left.decode("latin-1"))
            _estimate(len(left) + left.count("%") * _largest_text(_percent_args(right)), "the formatted text")
        return _made(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """Bound the str methods that could make huge strings; check what text methods make, count the rest."""
        owner = __obj.__self__ if isinstance(__obj, (BuiltinMethodType, MethodType)) else None
        if isinstance(owner, _CHECKED_OWNERS):
            args = _check_method(owner, __obj.__name__, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(owner, _TEXT_OWNERS):
            return _made(result, f"the result of {__obj.__name__}()")
        if isinstance(result, _SIZED) and not isinstance(__obj, Macro):  # a macro's text was counted in its buffer
            _spend(len(result))  # dict(), d.get('x'), image()...: a value that exists already or is small
        return result

    def concat_values(self, join: Callable[[Iterable[Any]], str], parts: tuple[Any, ...]) -> str:
        """`a ~ b ~ c`: refused when the parts' text is more than MAX_VALUE, counted when made."""
        total = 0
        for part in parts:
            total += text_size(part)
            if total > MAX_VALUE:
                raise _too_big("joining these values with ~")
        return _made(join(parts), "joining these values with ~")

    def step(self) -> None:
        """Count one step (a block body run) for the letter being rendered (steps.step)."""
        step()

    def counted(self, iterable: Any) -> Iterator[Any]:
        """What a `{% for %}` loops over, one step per item (its `if` filter runs outside any block body)."""
        for item in iterable:
            step()
            yield item

    def new_buffer(self) -> list[str]:
        """A counted buffer for compiled templates (see LetterCodeGenerator)."""
        return _Buffer()

    def concat(self, pieces: Iterable[str]) -> str:  # type: ignore[override]
        """Join rendered text (a buffer, or a block's output for self.<block>()), counting it if not yet counted."""
        if type(pieces) is _Buffer:
            return "".join(pieces)
        return "".join(_counted(pieces))

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        """Unsafe access is an error here, not a silently undefined value."""
        raise SecurityError(f"access to the attribute {attribute!r} of a {type(obj).__name__} value is not allowed")

    def wrap_str_format(self, value: Any) -> Any:
        """Bound the widths and the size of what str.format and str.format_map make."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__
        _check_wide(fmt)
        fields = fmt.count("{")

        def checked(*args: Any, **kwargs: Any) -> str:
            # format_map's mapping is measured whole: its text is at least as long as any value it gives.
            _estimate(len(fmt) + fields * _largest_text([*args, *kwargs.values()]), "the formatted text")
            return _made(wrapped(*args, **kwargs), "the formatted text")

        return update_wrapper(checked, wrapped)


def _make_environment(*, autoescape: bool = True) -> LetterEnvironment:
    env = LetterEnvironment(autoescape=autoescape, undefined=LetterUndefined, finalize=_finalize, auto_reload=False,
                            cache_size=0, keep_trailing_newline=True)
    env.globals.pop("lipsum", None)
    env.globals["image"] = image
    env.globals["namespace"] = LetterNamespace
    env.globals["range"] = counted_range
    env.filters.pop("urlize", None)
    env.filters.update(FILTERS)
    env.filters.update(center=_center, indent=_indent, format=_format, replace=_replace, join=_join,
                       wordwrap=_wordwrap, sum=_sum, batch=_batch, slice=_slice, tojson=_tojson)
    env.filters.update({name: _guard_filter(name, func) for name, func in env.filters.items()})
    return env


ENV = _make_environment()
COMPILE_ONLY_GLOBALS = frozenset({"block", "slot"})
KNOWN_GLOBALS = frozenset(ENV.globals) | COMPILE_ONLY_GLOBALS
