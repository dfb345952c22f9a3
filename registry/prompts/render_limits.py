"""Limits on rendering: a hostile template spends neither unbounded time nor memory.

Jinja2's sandbox stops escapes from the template language, not resource use: a committed
`{{ 9 ** 200000000 }}` or `{{ 'a' * 10**9 }}` would otherwise freeze whoever renders it
(the server, `lint`, the review job). The guards here, installed by
`rendering.make_environment`, bound every way a template can repeat work or grow a value:

- Constant folding is off, so no part of a template runs while it compiles.
- The operators `*`, `**`, `+` and `%` are intercepted (Jinja's `intercepted_binops`) and
  refused before they run when their result would pass the value limit; so are `~`
  (concatenation), filters and `str` methods that grow text (`center`, `indent`,
  `replace`, `join`, `format`, `ljust`, …); every filter's result is checked after.
- Every `for` loop and every call (macros included) checks the deadline, so nested loops
  and recursive macros stop at the time limit.
- Output is counted as it is produced (message blocks included) against the output limit.

Exceeding a limit raises `RenderLimitExceeded` naming the limit, the file and the line.
The limits are settings (`RenderLimits`); the defaults suit any real prompt.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

MAX_INT_BITS = 16_384  # about 4,900 decimal digits: past Python's own int-to-str limit
_LOOP_CHECK_EVERY = 64  # loop iterations between two looks at the clock

# A number in a format spec (`{:>1000000}`) or a printf conversion (`%1000000d`, `%*d`).
_FORMAT_SPEC_NUMBER = re.compile(r"\{[^{}]*:[^{}]*?(\d+)[^{}]*\}")
_PRINTF_WIDTH = re.compile(r"%[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


@dataclass(frozen=True)
class RenderLimits:
    """How much one render may spend: wall time, output size, size of any value."""

    timeout_seconds: float = 2.0
    max_output_chars: int = 262_144
    max_value_chars: int = 1_000_000


DEFAULT_LIMITS = RenderLimits()


class LimitHit(Exception):
    """Raised inside a render when a limit is passed; rendering turns it into an error."""

    def __init__(self, limit: str, detail: str) -> None:
        super().__init__(detail)
        self.limit = limit
        self.detail = detail


class Budget:
    """What one render has left: its deadline and the output produced so far."""

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.timeout_seconds
        self.output = 0
        self.produced = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitHit(
                "timeout_seconds",
                f"rendering took longer than the limit of {self.limits.timeout_seconds:g} s",
            )

    def add_output(self, size: int) -> None:
        self.output += size
        if self.output > self.limits.max_output_chars:
            raise LimitHit(
                "max_output_chars",
                f"the rendered output passed the limit of {self.limits.max_output_chars:,} "
                "characters",
            )
        self.tick()


    def add_produced(self, size: int) -> None:
        """Count text made anywhere (macros, blocks, messages, output), kept or not."""
        self.produced += size
        if self.produced > self.limits.max_value_chars:
            raise LimitHit(
                "max_value_chars",
                f"rendering produced more than {self.limits.max_value_chars:,} characters",
            )


_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "promptctl_render_budget", default=None
)


def start_budget(limits: RenderLimits) -> tuple[Budget, contextvars.Token]:
    """Open a budget for one render; pass the token to `end_budget`."""
    budget = Budget(limits)
    return budget, _BUDGET.set(budget)


def end_budget(token: contextvars.Token) -> None:
    _BUDGET.reset(token)


def _budget() -> Budget:
    budget = _BUDGET.get()
    if budget is None:  # a template rendered outside render_compiled: limits, no clock
        budget = Budget(DEFAULT_LIMITS)
        budget.deadline = float("inf")
    return budget


def _value_limit() -> int:
    return _budget().limits.max_value_chars


def _too_big(size: int, what: str) -> None:
    limit = _value_limit()
    if size > limit:
        raise LimitHit(
            "max_value_chars",
            f"{what} would make a value of {size:,} items or characters, over the limit of "
            f"{limit:,}",
        )


_SIZED = (str, bytes, list, tuple, dict, set, frozenset)


def _sized(value: Any) -> int | None:
    if isinstance(value, _SIZED):
        return len(value)
    return None


def check_value(value: Any, what: str) -> Any:
    """Refuse a value bigger than the value limit; return it otherwise."""
    size = _sized(value)
    if size is not None:
        _too_big(size, what)
    return value


# -- operators ---------------------------------------------------------------------------


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse `left <operator> right` before it runs when its result would be too big."""
    if operator == "**":
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and abs(left) > 1
            and left.bit_length() * right > MAX_INT_BITS
        ):
            raise LimitHit("max_value_chars", f"{left} ** {right} is too large a number")
    elif operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise LimitHit("max_value_chars", "the product is too large a number")
            return
        sequence, times = (left, right) if isinstance(right, int) else (right, left)
        size = _sized(sequence)
        if size is not None and isinstance(times, int):
            _too_big(size * max(times, 0), "repeating a value")
    elif operator == "+":
        left_size, right_size = _sized(left), _sized(right)
        if left_size is not None and right_size is not None:
            _too_big(left_size + right_size, "joining two values")
    elif operator == "%" and isinstance(left, str):
        check_printf(left)


def check_printf(template: str) -> None:
    """Refuse a printf-style format whose widths or precisions pass the value limit."""
    limit = _value_limit()
    for match in _PRINTF_WIDTH.finditer(template):
        for part in match.groups():
            if part == "*":
                raise LimitHit("max_value_chars", "a '*' width in a % format is not allowed")
            if part is not None and int(part) > limit:
                _too_big(int(part), "a % format width")


def check_format_spec(template: str) -> None:
    """Refuse a str.format template whose field widths pass the value limit."""
    for match in _FORMAT_SPEC_NUMBER.finditer(template):
        _too_big(int(match.group(1)), "a format width")


def concat(items: Iterable[Any]) -> str:
    """Jinja's `~`: join the items' text, refusing results over the value limit."""
    parts = [str(item) for item in items]
    _too_big(sum(map(len, parts)), "'~'")
    return "".join(parts)


def bounded_join(items: Iterable[Any], separator: str) -> None:
    """Refuse a join whose result would pass the value limit (items are not consumed)."""
    if not isinstance(items, list | tuple | str | dict | set | frozenset):
        return  # a generator: the result is checked after
    total = len(separator) * max(len(items) - 1, 0)
    limit = _value_limit()
    for item in items:
        total += len(item) if isinstance(item, str) else len(str(item))
        if total > limit:
            _too_big(total, "joining")


# -- calls: str methods that grow text ----------------------------------------------------


def _width_arg(args: tuple[Any, ...], kwargs: dict[str, Any], name: str, index: int = 0) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name)


def check_str_method(text: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a call of a growing `str` method whose result would pass the value limit."""
    if method in ("center", "ljust", "rjust", "zfill"):
        width = _width_arg(args, kwargs, "width")
        if isinstance(width, int):
            _too_big(width, f"str.{method}")
    elif method == "expandtabs":
        size = _width_arg(args, kwargs, "tabsize")
        if isinstance(size, int):
            _too_big(len(text) + text.count("\t") * max(size, 0), "str.expandtabs")
    elif method == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        if isinstance(old, str) and isinstance(new, str):
            count = text.count(old) if old else len(text) + 1
            if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0:
                count = min(count, args[2])
            _too_big(len(text) + count * max(len(new) - len(old), 0), "str.replace")
    elif method == "join" and args:
        bounded_join(args[0], text)
    elif method in ("format", "format_map"):
        check_format_spec(text)
    elif method == "translate" and args and isinstance(args[0], dict):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        _too_big(len(text) * max(longest, 1), "str.translate")


# -- filters --------------------------------------------------------------------------------


def _filter_precheck(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    value = args[0] if args else None
    rest = args[1:]
    if name == "center":
        width = _width_arg(rest, kwargs, "width")
        if isinstance(width, int):
            _too_big(width, "the center filter")
    elif name == "indent" and isinstance(value, str):
        width = _width_arg(rest, kwargs, "width")
        width = len(width) if isinstance(width, str) else width
        if isinstance(width, int):
            _too_big(len(value) + (value.count("\n") + 1) * max(width, 0), "the indent filter")
    elif name == "replace" and isinstance(value, str):
        check_str_method(value, "replace", tuple(rest), {})
    elif name == "wordwrap" and isinstance(value, str):
        wrapstring = _width_arg(rest, kwargs, "wrapstring", 2)
        if isinstance(wrapstring, str):
            _too_big(len(value) * (1 + len(wrapstring)), "the wordwrap filter")
    elif name == "join" and value is not None:
        separator = _width_arg(rest, kwargs, "d")
        bounded_join(value, separator if isinstance(separator, str) else "")
    elif name == "format" and isinstance(value, str):
        check_printf(value)


_PRECHECKED_FILTERS = frozenset({"center", "indent", "replace", "wordwrap", "join", "format"})


def guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter: deadline before, growth checked before, size checked after.

    Every filter call of every render passes here, so the common path is kept to a few
    operations (filters that cannot grow a value skip the precheck).
    """
    pass_arg = getattr(function, "jinja_pass_arg", None)
    prechecked = name in _PRECHECKED_FILTERS
    what = f"the {name} filter"

    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _BUDGET.get()
        if budget is not None and time.monotonic() > budget.deadline:
            budget.tick()  # raises, with the message
        if prechecked:
            own = args[1:] if pass_arg is not None else args  # after context/environment
            _filter_precheck(name, own, kwargs)
        result = function(*args, **kwargs)
        if isinstance(result, _SIZED) and len(result) > _value_limit():
            check_value(result, what)
        return result

    guarded.__name__ = getattr(function, "__name__", name)
    if pass_arg is not None:
        guarded.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    return guarded


def guard_loop(iterable: Iterable[Any]) -> Iterator[Any]:
    """What every `for` loop iterates through: the deadline is checked as it goes."""
    budget = _budget()
    budget.tick()
    for count, item in enumerate(iterable):
        if count % _LOOP_CHECK_EVERY == 0:
            budget.tick()
        yield item


def count_produced(_environment: Any, value: Any) -> Any:
    """Jinja's `finalize`: count one piece of text a template outputs, wherever it goes
    (macros, blocks, messages), and return it.

    Called for every piece of output of every render: kept short.
    """
    budget = _BUDGET.get()
    if budget is not None and type(value) is str:
        budget.produced += len(value)
        if budget.produced > budget.limits.max_value_chars:
            budget.add_produced(0)  # raises, with the message
    return value


def tick() -> None:
    """Check the deadline of the render in progress (none outside a render)."""
    budget = _BUDGET.get()
    if budget is not None and time.monotonic() > budget.deadline:
        budget.tick()  # raises, with the message
