"""Argument conditions: the `when` clause of a policy rule, compiled once, evaluated per call.

A condition names an argument by *path* and tests the value found there. Paths are either
dotted (`customer.address.country`, `items.0.sku`) or, when they start with `/`, RFC 6901
JSON Pointers (`/items/0/sku`, with `~1` for `/` and `~0` for `~`). A segment that is a
canonical non-negative integer indexes a list; on an object it is an ordinary key.

Evaluation is three-valued: `True`, `False` or `None` for *indeterminate*. What an
indeterminate result means for a rule (fail closed) is the engine's business, not this
module's; here it only has to be reported honestly. `All.evaluate` combines conditions with
Kleene AND: any `False` wins, then any `None`.

A condition judges the arguments *as the upstream may read them* (issue 10), not only as
Airlock parsed them. The official Python SDK validates in pydantic's lax mode ("true", "yes"
and 1 become `True`; "150" becomes 150) and parses a JSON string given for a list or object
parameter (with its `\\u` escapes decoded); zod can coerce too. So:

- Equality (`eq`, `ne`, `in`, `not_in`, and `contains` on a list) is decided only between
  values of the same JSON type, at every depth; a value whose type differs from the
  operand's is indeterminate, since some upstream may coerce it into the operand.
- A string that parses as a JSON array or object is read both ways, as the string and as
  what it parses to, wherever it sits on a path or at its end: a condition holds or fails
  only if both readings agree. The parse is `app.jsonrpc.parse_json`, as strict as the
  message's own; JSON text that only a lax parser accepts (duplicate keys, NaN, integers
  beyond 2**53) has no reading Airlock can trust, and makes the condition indeterminate.
- A missing path is indeterminate, except for `exists`.

Deliberate choices, DO NOT "fix" without reading why:
- Equality is JSON equality where it is decided (`1 == 1.0`), never Python's (`True == 1`).
- The numeric operators (`gt`, `gte`, `lt`, `lte`) read a string holding a decimal number
  (`"150"`, `" 1e3 "`) as that number, because upstream servers commonly coerce such strings;
  otherwise `{"bounty_usd": "150"}` would dodge a `gt: 100` approval rule. Only ASCII decimal
  syntax counts: `"NaN"`, `"inf"`, `"0x10"` and `"1_000"` are not numbers (indeterminate).
  Booleans are never numbers.
- `regex` matches the whole string (`re.fullmatch`): with `re.search`, `^abc$` admits
  `"abc\\n"`, because `$` also matches before a trailing newline.

This module compiles already-validated `when` objects (see `document.py` for validation) and
does no I/O. Compilation parses paths and compiles regexes once, so evaluation on the hot path
only walks the arguments.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from app.jsonrpc import MessageError, parse_json

Truth: TypeAlias = bool | None
"""The result of a condition: True, False, or None when it cannot be determined."""

Test: TypeAlias = Callable[[Any], Truth]
"""One compiled operator applied to a resolved value (or `MISSING`)."""

OPERATORS: Final = (
    "eq",
    "ne",
    "in",
    "not_in",
    "regex",
    "gt",
    "gte",
    "lt",
    "lte",
    "exists",
    "contains",
)

_INDEX: Final = re.compile(r"0|[1-9][0-9]*")
_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_POINTER_ESCAPE: Final = re.compile(r"~(?![01])")


class _Missing:
    """The type of `MISSING`: what a path resolves to when nothing is there."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class _Unreadable:
    """The type of `UNREADABLE`: JSON text in a string that only a lax parser would accept."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNREADABLE"


UNREADABLE: Final = _Unreadable()
_CONTAINER_START: Final = frozenset("[{")
_SEVERAL: Final = object()
_JSON_SPACE: Final = " \t\r\n"


class PathSyntaxError(ValueError):
    """An argument path cannot be parsed. The message says why, in one sentence."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One step of a path: an object key, and the list index it also denotes (if any)."""

    key: str
    index: int | None


def parse_path(path: str) -> tuple[Segment, ...]:
    """Parse a dotted path or a JSON Pointer into segments.

    Raises:
        PathSyntaxError: the path is empty, has an empty dotted segment, or a bad `~` escape.
    """
    keys = _parse_pointer(path) if path.startswith("/") else _parse_dotted(path)
    return tuple(Segment(key, int(key) if _INDEX.fullmatch(key) else None) for key in keys)


def _parse_dotted(path: str) -> list[str]:
    if not path:
        raise PathSyntaxError("the argument path is empty; name an argument such as amount")
    keys = path.split(".")
    if "" in keys:
        raise PathSyntaxError(
            f'"{path}" has an empty segment; write a.b.c, or a JSON Pointer (/a/b) for keys that contain dots'
        )
    return keys


def _parse_pointer(path: str) -> list[str]:
    if _POINTER_ESCAPE.search(path):
        raise PathSyntaxError(
            f'"{path}" has a "~" that is not ~0 or ~1; in a JSON Pointer write ~0 for "~" and ~1 for "/"'
        )
    return [key.replace("~1", "/").replace("~0", "~") for key in path[1:].split("/")]


def resolve(segments: Sequence[Segment], arguments: Any) -> Any:
    """Return the value at `segments` inside `arguments`, or `MISSING`."""
    value = arguments
    for segment in segments:
        if isinstance(value, Mapping):
            value = value.get(segment.key, MISSING)
        elif isinstance(value, (list, tuple)) and segment.index is not None:
            value = value[segment.index] if segment.index < len(value) else MISSING
        else:
            return MISSING
    return value


def readings(segments: Sequence[Segment], arguments: Any) -> list[Any]:
    """Every value the upstream may see at `segments`: one, unless a string holds JSON.

    A string that parses as a JSON array or object, on the path or at its end, is followed
    both as the string and as the parsed value. The result may hold `MISSING` and
    `UNREADABLE` (see `json_in_string`).
    """
    values = [arguments]
    for segment in segments:
        values = [_step(value, segment) for value in _expanded(values)]
    return _expanded(values)


def _only_reading(segments: Sequence[Segment], arguments: Any) -> Any:
    """The hot path of `readings`: the value at `segments` when no string on the way could hold JSON.

    Returns `_SEVERAL` when a string that may hold a JSON array or object is met; the caller then
    works out every reading.
    """
    value = arguments
    for segment in segments:
        if isinstance(value, Mapping):
            value = value.get(segment.key, MISSING)
        elif isinstance(value, (list, tuple)) and segment.index is not None:
            value = value[segment.index] if segment.index < len(value) else MISSING
        elif isinstance(value, str):
            return _SEVERAL
        else:
            return MISSING
    if isinstance(value, str) and value.lstrip(_JSON_SPACE)[:1] in _CONTAINER_START:
        return _SEVERAL
    return value


def _expanded(values: list[Any]) -> list[Any]:
    """`values`, each string holding a JSON array or object followed by what it parses to."""
    if not any(isinstance(value, str) for value in values):
        return values
    out: list[Any] = []
    for value in values:
        out.append(value)
        if isinstance(value, str):
            parsed = json_in_string(value)
            if parsed is not MISSING:
                out.append(parsed)
    return out


def _step(value: Any, segment: Segment) -> Any:
    if isinstance(value, Mapping):
        return value.get(segment.key, MISSING)
    if isinstance(value, (list, tuple)) and segment.index is not None:
        return value[segment.index] if segment.index < len(value) else MISSING
    return UNREADABLE if value is UNREADABLE else MISSING


def json_in_string(text: str) -> Any:
    """The JSON array or object `text` holds, `MISSING` if it holds none, `UNREADABLE` if unsure.

    Parsed as strictly as a message (`app.jsonrpc.parse_json`). Text that fails that parse but
    that Python's lenient `json.loads` accepts is `UNREADABLE`: a lenient upstream would read
    something Airlock cannot vouch for.
    """
    start = text.lstrip(_JSON_SPACE)[:1]
    if start not in _CONTAINER_START:
        return MISSING
    try:
        value = parse_json(text.encode("utf-8"))
    except (MessageError, UnicodeEncodeError):
        return UNREADABLE if _lenient_parses(text) else MISSING
    return value if isinstance(value, (list, dict)) else MISSING


def _lenient_parses(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def json_equal(left: Any, right: Any) -> bool:
    """Equality as JSON means it: numbers by value, but booleans and strings are never numbers."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, str) or isinstance(right, str):
        return isinstance(left, str) and isinstance(right, str) and left == right
    if left is None or right is None:
        return left is right
    if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return False


def equal(value: Any, operand: Any) -> Truth:
    """JSON equality, decided only where an upstream's coercion could not change the answer.

    None (indeterminate) when the JSON types differ anywhere (`"true"` or 1 against `true`,
    `"150"` against 150), or when objects that agree on their common keys have different
    keys (an upstream may ignore the extra ones). Lists of different lengths, and values of
    the same type that differ, are definitely unequal.
    """
    kind = json_type(value)
    if kind != json_type(operand) or kind == "other":
        return None
    if kind == "array":
        if len(value) != len(operand):
            return False
        return _all(map(equal, value, operand))
    if kind == "object":
        common = _all(equal(value[key], operand[key]) for key in value.keys() & operand.keys())
        return None if common is True and value.keys() != operand.keys() else common
    return json_equal(value, operand)


def json_type(value: Any) -> str:
    """The JSON type of a parsed value: null, boolean, number, string, array, object (or other)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return "other"


def _not(truth: Truth) -> Truth:
    return None if truth is None else not truth


def _any(results: Any) -> Truth:
    """Kleene OR: any True wins, then any None."""
    outcome: Truth = False
    for result in results:
        if result is True:
            return True
        if result is None:
            outcome = None
    return outcome


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def as_number(value: Any) -> int | float | None:
    """Read `value` as a number for comparison, or None when it is not one.

    Accepts ints, non-NaN floats and strings holding an ASCII decimal number; never booleans.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, str):
        return _parse_decimal(value)
    return None


def _parse_decimal(text: str) -> int | float | None:
    text = text.strip()
    match = _DECIMAL.fullmatch(text)
    if match is None:
        return None
    try:
        return float(text) if "." in text or match.group(1) else int(text)
    except ValueError:  # more digits than int() will convert (sys.int_info.str_digits_check_threshold)
        return None


@dataclass(frozen=True, slots=True)
class Condition:
    """One `when` entry: a path and the operators that must all hold for the value there."""

    path: str
    segments: tuple[Segment, ...]
    tests: tuple[Test, ...]

    def evaluate(self, arguments: Any) -> Truth:
        """Apply every operator (Kleene AND) to each reading of the value at the path.

        The result is decided only when every reading gives the same answer.
        """
        value = _only_reading(self.segments, arguments)
        if value is not _SEVERAL:
            return self._judge(value)
        values = readings(self.segments, arguments)
        if any(value is UNREADABLE for value in values):
            return None
        verdicts = {self._judge(value) for value in values}
        return verdicts.pop() if len(verdicts) == 1 else None

    def _judge(self, value: Any) -> Truth:
        if value is UNREADABLE:
            return None
        return _all(test(value) for test in self.tests)


@dataclass(frozen=True, slots=True)
class All:
    """A compiled `when` clause: every condition must hold."""

    conditions: tuple[Condition, ...]

    def evaluate(self, arguments: Any) -> Truth:
        """True when all conditions hold, False when one fails, else None (indeterminate)."""
        return _all(condition.evaluate(arguments) for condition in self.conditions)


def _all(results: Any) -> Truth:
    outcome: Truth = True
    for result in results:
        if result is False:
            return False
        if result is None:
            outcome = None
    return outcome


def compile_when(when: Mapping[str, Any]) -> All:
    """Compile a validated `when` object (path → condition) into an `All`.

    Raises:
        PathSyntaxError: a path cannot be parsed.
        re.error: a `regex` operand does not compile.
        ValueError: an operator is unknown (validation should have caught it).
    """
    return All(tuple(compile_condition(path, spec) for path, spec in when.items()))


def compile_condition(path: str, spec: Any) -> Condition:
    """Compile one `when` entry. A non-object `spec` is shorthand for `{"eq": spec}`."""
    operators = spec if isinstance(spec, Mapping) else {"eq": spec}
    tests = tuple(_compile_operator(name, operand) for name, operand in operators.items())
    return Condition(path, parse_path(path), tests)


def _compile_operator(name: str, operand: Any) -> Test:
    if name == "exists":
        return _exists(bool(operand))
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown condition operator {name!r}")
    return _present(factory(operand))


def _present(test: Test) -> Test:
    """Make `test` indeterminate on a missing value: absence proves nothing either way."""

    def on_present(value: Any) -> Truth:
        return None if value is MISSING else test(value)

    return on_present


def _exists(wanted: bool) -> Test:
    def exists(value: Any) -> Truth:
        return (value is not MISSING) is wanted

    return exists


def _eq(operand: Any) -> Test:
    return lambda value: equal(value, operand)


def _ne(operand: Any) -> Test:
    return lambda value: _not(equal(value, operand))


def _in(operand: Any) -> Test:
    choices = tuple(operand)
    return lambda value: _any(equal(value, choice) for choice in choices)


def _not_in(operand: Any) -> Test:
    choices = tuple(operand)
    return lambda value: _not(_any(equal(value, choice) for choice in choices))


def _regex(operand: Any) -> Test:
    fullmatch = re.compile(operand).fullmatch

    def regex(value: Any) -> Truth:
        return fullmatch(value) is not None if isinstance(value, str) else None

    return regex


def _compare(holds: Callable[[int | float, int | float], bool]) -> Callable[[Any], Test]:
    def factory(operand: Any) -> Test:
        bound: int | float = operand

        def compare(value: Any) -> Truth:
            number = as_number(value)
            return None if number is None else holds(number, bound)

        return compare

    return factory


def _contains(operand: Any) -> Test:
    def contains(value: Any) -> Truth:
        if isinstance(value, str):
            return operand in value if isinstance(operand, str) else None
        if isinstance(value, (list, tuple)):
            return _any(equal(element, operand) for element in value)
        return None

    return contains


_FACTORIES: Final[dict[str, Callable[[Any], Test]]] = {
    "eq": _eq,
    "ne": _ne,
    "in": _in,
    "not_in": _not_in,
    "regex": _regex,
    "gt": _compare(lambda number, bound: number > bound),
    "gte": _compare(lambda number, bound: number >= bound),
    "lt": _compare(lambda number, bound: number < bound),
    "lte": _compare(lambda number, bound: number <= bound),
    "contains": _contains,
}
