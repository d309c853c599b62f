"""Coordinator-authored content (subjects, preheaders, Markdown blocks) in a locked Jinja sandbox.

Coordinators may write `{{ member.first_name | default("friend") }}` and plain expressions over
the campaign data, nothing more: the context holds only plain data and placeholder proxies (no
settings, environment or objects with methods to climb through), only a short list of filters
and string methods exists, and each render stops after `MAX_SECONDS` or `MAX_OUTPUT` characters.
Loops, calls, attribute look-ups and arithmetic all check the deadline, because Jinja compiles
to Python and nothing else would interrupt a tight nested loop.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from functools import lru_cache
from types import TracebackType
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, nodes
from jinja2.filters import FILTERS
from jinja2.runtime import Undefined, markup_join, str_join
from jinja2.sandbox import SandboxedEnvironment, SecurityError, safe_range
from jinja2.visitor import NodeTransformer

from cop_mail.rendering.errors import RenderError
from cop_mail.rendering.placeholders import MARKER_RE, Placeholder, UnknownFieldError

MAX_SECONDS = 2.0
MAX_OUTPUT = 1_000_000
MAX_SOURCE = 1_000_000

# Filters a coordinator can reach; anything that can multiply text (format, center, indent,
# join, replace, wordwrap) stays out.
SAFE_FILTERS = frozenset(
    {
        "default",
        "d",
        "e",
        "escape",
        "upper",
        "lower",
        "title",
        "capitalize",
        "trim",
        "striptags",
        "truncate",
        "length",
        "count",
        "first",
        "last",
        "round",
        "int",
        "float",
        "abs",
        "string",
        "wordcount",
    }
)
# Member fields are placeholders filled in later, per member: only these make sense on them.
PLACEHOLDER_FILTERS = frozenset({"default", "d", "e", "escape", "string"})
SAFE_METHODS = frozenset(
    {
        "upper",
        "lower",
        "title",
        "capitalize",
        "strip",
        "lstrip",
        "rstrip",
        "startswith",
        "endswith",
        "items",
        "keys",
        "values",
        "get",
    }
)

_ANY_MARKER = re.compile(r"@@cm:", re.IGNORECASE)

_deadline: ContextVar[float | None] = ContextVar("cop_mail_sandbox_deadline", default=None)


class _TooSlow(Exception):
    pass


class _TooLarge(Exception):
    pass


def tick() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise _TooSlow


def _check_size(value: Any) -> None:
    if isinstance(value, str | list | tuple | dict) and len(value) > MAX_OUTPUT:
        raise _TooLarge


def placeholder_default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """`default` that also works on member fields, whose value is only known per member."""
    if isinstance(value, Placeholder):
        return value.with_default(default_value)
    return FILTERS["default"](value, default_value, boolean)


def guard_placeholder_filter(name: str, func: Any) -> Any:
    """Refuse filters that would mangle a member-field marker (e.g. `upper` would break it)."""
    if name in PLACEHOLDER_FILTERS:
        return func
    pass_arg = getattr(func, "jinja_pass_arg", None)
    value_index = 0 if pass_arg is None else 1  # pass_environment/context filters get that first

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if len(args) > value_index and isinstance(args[value_index], Placeholder):
            raise RenderError(
                f"the '{name}' filter can't be used on member fields such as {args[value_index].field}: "
                "they are filled in separately for each member (only 'default' works on them)"
            )
        return func(*args, **kwargs)

    if pass_arg is not None:
        guarded.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    return guarded


class _GuardLoops(NodeTransformer):
    """Route every loop and `~` concatenation through checked functions."""

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802 (Jinja's visitor naming)
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_cm_guard_iter", [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        items = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(items, "_cm_concat", [], [], None, None, lineno=node.lineno)


def _placeholder_misuse(value: Placeholder, what: str) -> RenderError:
    return RenderError(
        f"{what} member fields such as {value.field} is not possible: they are filled in separately "
        "for each member (print them, or give them a default)"
    )


def _guard_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    if isinstance(iterable, Placeholder):
        raise _placeholder_misuse(iterable, "looping over")
    for item in iterable:
        tick()
        yield item


class ContentSandbox(SandboxedEnvironment):
    """The sandbox for coordinator content; one instance for HTML-bound text, one for plain text."""

    intercepted_binops = frozenset({"*", "**", "%", "+", "//"})

    def __init__(self, autoescape: bool):
        super().__init__(autoescape=autoescape, undefined=StrictUndefined, keep_trailing_newline=True)
        # Drop Jinja's default globals (cycler, joiner, namespace, lipsum, dict): none is needed
        # and each is one more object to climb through.
        self.globals.clear()
        self.globals["range"] = safe_range
        self.filters = {name: guard_placeholder_filter(name, FILTERS[name]) for name in SAFE_FILTERS}
        self.filters["default"] = self.filters["d"] = placeholder_default
        self.filters["_cm_guard_iter"] = _guard_iter
        self.filters["_cm_concat"] = self._concat

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        guarded: nodes.Template = _GuardLoops().visit(tree)
        return guarded

    def _concat(self, items: list[Any]) -> str:
        tick()
        if sum(len(item) if isinstance(item, str) else 32 for item in items) > MAX_OUTPUT:
            raise _TooLarge
        return markup_join(items) if self.autoescape else str_join(items)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        # Only a few harmless methods: str.ljust(10**9) and friends would allocate gigabytes.
        return not callable(value) or attr in SAFE_METHODS

    def getattr(self, obj: Any, attribute: str) -> Any:
        tick()
        if isinstance(obj, Undefined):
            # Say "unknown name 'cycler'" rather than blaming an attribute of the undefined value.
            obj._fail_with_undefined_error()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        tick()
        if isinstance(obj, Placeholder):
            raise _placeholder_misuse(obj, "taking letters out of")
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        tick()
        for value in args:
            _check_size(value)
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        tick()
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)


def _check_binop(operator: str, left: Any, right: Any) -> None:
    sized = (str, list, tuple)
    if operator == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, sized) and isinstance(count, int) and len(seq) * count > MAX_OUTPUT:
                raise _TooLarge
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > 100_000:
            raise _TooLarge
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and max(abs(left), 2).bit_length() * right > 100_000:
            raise _TooLarge
    elif operator == "%" and isinstance(left, str):
        raise SecurityError("%-formatting of text is not available; write the text out instead")
    elif (
        operator == "+" and isinstance(left, sized) and isinstance(right, sized) and len(left) + len(right) > MAX_OUTPUT
    ):
        raise _TooLarge


@lru_cache(maxsize=2)
def sandbox(autoescape: bool) -> ContentSandbox:
    return ContentSandbox(autoescape)


def render_coordinator_text(
    source: str, context: Mapping[str, Any], *, html: bool = True, field: str = "content"
) -> str:
    """Render coordinator-written Jinja in the sandbox.

    `html=True` autoescapes values (for Markdown and anything that becomes HTML); `html=False`
    is for plain text such as subjects, which are escaped wherever they are placed into HTML.
    Raises RenderError with the line and a plain message.
    """
    if len(source) > MAX_SOURCE:
        raise RenderError(
            f"the text is {len(source) // 1000:,} KB; the limit is {MAX_SOURCE // 1000:,} KB", None, field
        )
    env = sandbox(html)
    try:
        template = env.from_string(source)
    except TemplateSyntaxError as exc:
        raise RenderError(_plain_syntax(exc.message or "syntax error"), exc.lineno, field) from None
    token = _deadline.set(time.monotonic() + MAX_SECONDS)
    try:
        rendered = _collect(template.generate(dict(context)))
    except RenderError as exc:
        raise RenderError(exc.message, exc.line or _template_line(exc.__traceback__), field) from None
    except Exception as exc:  # every failure inside content becomes a message for the form
        raise RenderError(plain_message(exc), _template_line(exc.__traceback__), field) from None
    finally:
        _deadline.reset(token)
    if broken := broken_marker(rendered):
        raise RenderError(
            f"a member field was changed by a filter or block ({broken}); member fields are filled in "
            "separately for each member, so print them as they are",
            None,
            field,
        )
    return rendered


def broken_marker(text: str) -> str | None:
    """A marker mangled after it was made (e.g. `{% filter upper %}`), which would print as code."""
    for match in _ANY_MARKER.finditer(text):
        if not MARKER_RE.match(text, match.start()):
            return text[match.start() : match.start() + 24]
    return None


def _collect(chunks: Iterable[str]) -> str:
    out: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise _TooLarge
        tick()
        out.append(chunk)
    return "".join(out)


def _template_line(tb: TracebackType | None) -> int | None:
    """Jinja rewrites tracebacks so frames from the template carry its line numbers."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _plain_syntax(message: str) -> str:
    return f"template syntax: {message}"


_UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$")
_NO_ATTRIBUTE = re.compile(r"^'.*' has no attribute '([^']+)'$")


def plain_message(exc: BaseException) -> str:
    if isinstance(exc, _TooSlow):
        return f"the content took longer than {MAX_SECONDS:g} seconds to fill in; simplify its loops"
    if isinstance(exc, _TooLarge | MemoryError | OverflowError):
        return f"the content grew beyond {MAX_OUTPUT // 1_000_000} MB; shorten it"
    if isinstance(exc, RecursionError):
        return "the content calls itself too deeply"
    if isinstance(exc, SecurityError):
        return f"that is not allowed in email content ({exc})"
    if isinstance(exc, UnknownFieldError):
        return str(exc.args[0])
    if isinstance(exc, UndefinedError):
        message = str(exc.message or exc)
        if match := _UNDEFINED_NAME.match(message):
            return f"unknown name '{match.group(1)}' (check the spelling, or give it a default)"
        if match := _NO_ATTRIBUTE.match(message):
            return f"there is no '{match.group(1)}' here (check the spelling, or give it a default)"
        return message
    return f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
