"""Policy documents: JSON text → validated `CompiledPolicy`, or every problem, located.

The job here is to turn what a policy author wrote into either a policy the engine can trust
or a `PolicyError` listing *all* the problems, each at a readable JSON path
(`rules[2].when.bounty_usd.gt`) with a message the author can act on. Three passes:

1. `parse_policy_text`: strict JSON. Syntax errors are located as `line L, column C`.
   Duplicate keys are errors (JSON parsers disagree on which value wins, so a duplicated
   `"action"` could mean different things to the author and to Airlock), and so are NaN and
   Infinity (not JSON, although Python's `json` accepts them).
2. Structure, with `jsonschema` against `POLICY_SCHEMA` (`policy.schema.json`, the published
   schema that is also user documentation). jsonschema's messages are rewritten into plain
   sentences in `_describe`.
3. Meaning, which a schema cannot say: regexes compile, argument paths parse, rule ids are
   unique.

Only a document with no problems is compiled (`engine.CompiledRule`s with prebuilt
`Decision`s). This module reads files but holds no state: watching them is `reloader.py`'s
job, deciding calls is `engine.py`'s.

At ~500 lines this is past the ~400 lines at which a module is usually split. It is still one concept (a
document in, a policy or located problems out); if it grows, pass 1 (strict JSON) is the
piece to move into its own private module.
"""

from __future__ import annotations

import copy
import difflib
import errno
import hashlib
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, TypeAlias

from jsonschema import Draft202012Validator, ValidationError

from app.errors import PolicyError, PolicyProblem
from app.policy.conditions import OPERATORS, PathSyntaxError, compile_when, parse_path
from app.policy.engine import (
    Action,
    CompiledPolicy,
    CompiledRule,
    Decision,
    GlobSet,
    GrantPolicy,
    RateLimit,
    Routing,
    ToolClass,
)

ROUTED_CHANNELS: Final = ("slack",)
"""Rule keys that route an approval to a reviewer channel; `Decision.routing` keeps them by name."""

POLICY_SCHEMA: Final[dict[str, Any]] = json.loads(
    resources.files("app.policy").joinpath("policy.schema.json").read_text(encoding="utf-8")
)
_VALIDATOR: Final = Draft202012Validator(POLICY_SCHEMA)

DEFAULT_SOURCE: Final = "<policy>"
MAX_DEPTH: Final = 32
"""Deeper documents are refused: no policy needs them, and copying one could exhaust the stack."""

Path: TypeAlias = tuple[str | int, ...]
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EMPTY_HINTS: Final = {
    "agents": ' (omit "agents" to apply the rule to every agent)',
    "reviewers": ' (omit "reviewers" to let any reviewer decide)',
    "reviewer_groups": ' (omit "reviewer_groups" to let any reviewer decide)',
}
_JSON_SYNTAX_HINTS: Final = {
    "Expecting value": ("expected a JSON value here (a trailing comma, a comment or an unquoted word?)"),
    "Expecting property name enclosed in double quotes": (
        "expected a key in double quotes (a trailing comma before '}'?)"
    ),
    "Expecting ',' delimiter": "expected ',' between two items, or the closing bracket",
    "Expecting ':' delimiter": "expected ':' after the key",
    "Extra data": "unexpected text after the end of the JSON document",
}


@dataclass(frozen=True, order=True)
class _Problem:
    """A problem with its location still as a path, so problems sort by document order."""

    key: tuple[tuple[int, int | str], ...]
    location: str
    message: str

    @classmethod
    def at(cls, path: Path, message: str) -> _Problem:
        key = tuple((0, part) if isinstance(part, int) else (1, part) for part in path)
        return cls(key, format_location(path), message)


def format_location(path: Sequence[str | int]) -> str:
    """Render a path as `rules[2].when.bounty_usd.gt`; keys that are not names are quoted."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text


def _raise_if_any(source: str, problems: list[_Problem]) -> None:
    if problems:
        unique = sorted(set(problems))
        raise PolicyError(source, [PolicyProblem(p.location, p.message) for p in unique])


# --- pass 1: strict JSON -------------------------------------------------------------------


class _BadNumber:
    """Stands in for NaN, Infinity or an unusable number while parsing, to be located later."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _parse_constant(token: str) -> _BadNumber:
    return _BadNumber(f"{token} is not a JSON number; write a finite number")


def _parse_float(token: str) -> float | _BadNumber:
    value = float(token)
    return value if math.isfinite(value) else _parse_constant(token)


def _parse_int(token: str) -> int | _BadNumber:
    try:
        return int(token)
    except ValueError:  # beyond sys.get_int_max_str_digits()
        return _BadNumber(f"this number has {len(token)} digits, too many to use")


def parse_policy_text(text: str, source: str) -> Any:
    """Parse policy JSON strictly.

    Raises:
        PolicyError: a syntax error (located `line L, column C`), or every duplicate key and
            NaN/Infinity (located by JSON path).
    """
    if not text.strip():
        raise PolicyError(
            source,
            [PolicyProblem("", 'the file is empty; a policy needs at least {"version": "1"}')],
        )
    duplicates: list[tuple[dict[str, Any], list[str]]] = []  # holds the dicts, so ids stay unique

    def object_from_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            duplicates.append((obj, [k for k, n in Counter(k for k, _ in pairs).items() if n > 1]))
        return obj

    try:
        value = json.loads(
            text,
            object_pairs_hook=object_from_pairs,
            parse_constant=_parse_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except json.JSONDecodeError as exc:
        location = f"line {exc.lineno}, column {exc.colno}"
        raise PolicyError(source, [PolicyProblem(location, _JSON_SYNTAX_HINTS.get(exc.msg, exc.msg))]) from None
    except RecursionError:
        raise PolicyError(source, [PolicyProblem("", "the JSON is nested too deeply")]) from None
    _raise_if_any(source, list(_strictness_problems(value, duplicates)))
    return value


def _strictness_problems(value: Any, duplicates: list[tuple[dict[str, Any], list[str]]]) -> Iterator[_Problem]:
    duplicated = {id(obj): keys for obj, keys in duplicates}
    for path, node in _walk(value):
        if isinstance(node, _BadNumber):
            yield _Problem.at(path, node.message)
        elif isinstance(node, dict):
            for key in duplicated.get(id(node), ()):
                yield _Problem.at(
                    (*path, key),
                    "this key appears more than once in the same object; keep only one "
                    "(JSON readers disagree on which one wins)",
                )


def _walk(value: Any) -> Iterator[tuple[Path, Any]]:
    """Every node of a JSON value with its path, without recursion (nesting can be deep)."""
    stack: list[tuple[Path, Any]] = [((), value)]
    while stack:
        path, node = stack.pop()
        yield path, node
        if isinstance(node, dict):
            stack.extend(((*path, key), child) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend(((*path, index), child) for index, child in enumerate(node))


def _depth_problems(document: Any) -> Iterator[_Problem]:
    for path, _ in _walk(document):
        if len(path) > MAX_DEPTH:
            yield _Problem.at(path, f"nested more than {MAX_DEPTH} levels deep")
            return


# --- pass 2: structure (JSON Schema) ---------------------------------------------------------


def _schema_problems(document: Any) -> Iterator[_Problem]:
    for error in _VALIDATOR.iter_errors(document):
        yield from _describe(error, document)


def _describe(error: ValidationError, document: Any) -> Iterator[_Problem]:
    """Rewrite one jsonschema error as problems an author can act on."""
    path: Path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    instance: Any = error.instance
    required: Any = error.validator_value
    match error.validator:
        case "additionalProperties":
            allowed = list(schema.get("properties", {}))
            for key in instance:
                if key not in allowed:
                    yield _Problem.at((*path, key), _unknown_key(key, allowed))
        case "required":
            for key in required:
                if key not in instance:
                    yield _Problem.at(path, f'missing required key "{key}"')
        case "not":
            yield _Problem.at(path, _misplaced_field(path, document))
        case _:
            yield _Problem.at(path, _describe_value(error, path))


def _describe_value(error: ValidationError, path: Path) -> str:
    expected: Any = error.validator_value
    instance: Any = error.instance
    got = _show(instance)
    match error.validator:
        case "enum":
            return f"{got} is not one of {', '.join(str(v) for v in expected)}"
        case "const":
            return f"must be {_show(expected)}, not {got}"
        case "type":
            subject = "the policy " if not path else ""
            return f"{subject}must be {_type_names(expected)}, not {_kind(instance)}"
        case "minimum":
            return f"must be at least {expected}, not {got}"
        case "exclusiveMinimum":
            return f"must be greater than {expected}, not {got}"
        case "minItems" | "minLength":
            return "must not be empty" + _EMPTY_HINTS.get(str(path[-1]) if path else "", "")
        case "minProperties":
            return f"needs at least one operator: {', '.join(OPERATORS)}"
        case _:
            return str(error.message)


def _unknown_key(key: str, allowed: list[str]) -> str:
    names = [name for name in allowed if not name.startswith("$")]
    close = difflib.get_close_matches(key, names, n=1)
    if close:
        return f'unknown key "{key}"; did you mean "{close[0]}"?'
    return f'unknown key "{key}"; expected one of {", ".join(names)}'


def _misplaced_field(path: Path, document: Any) -> str:
    field = str(path[-1])
    if field == "rate_limit":
        return "has no effect on a deny rule; put it on the allow or approve rule whose calls it should limit"
    action = _lookup(document, path[:-1]).get("action")
    return f'"{field}" is only allowed on approve rules (this rule\'s action is "{action}")'


def _lookup(document: Any, path: Path) -> Any:
    for part in path:
        document = document[part]
    return document


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return _show(value)
    if isinstance(value, (int, float)):
        return f"the number {_show(value)}"
    if isinstance(value, str):
        return f"the string {_show(value)}"
    return "a list" if isinstance(value, list) else "an object"


def _type_names(expected: str | list[str]) -> str:
    names = {
        "string": "a string",
        "number": "a number",
        "integer": "a whole number",
        "boolean": "true or false",
        "object": "an object",
        "array": "a list",
        "null": "null",
    }
    kinds = [expected] if isinstance(expected, str) else expected
    return " or ".join(names.get(kind, kind) for kind in kinds)


# --- pass 3: meaning -------------------------------------------------------------------------


def _semantic_problems(document: Any) -> Iterator[_Problem]:
    rules = document.get("rules") if isinstance(document, dict) else None
    if not isinstance(rules, list):
        return
    yield from _duplicate_ids(rules)
    for index, rule in enumerate(rules):
        when = rule.get("when") if isinstance(rule, dict) else None
        if isinstance(when, dict):
            yield from _condition_problems(("rules", index, "when"), when)
        if isinstance(rule, dict):
            yield from _escalation_problems(("rules", index), rule)
            if "grants" in rule and isinstance(rule.get("approvals"), int) and rule["approvals"] > 1:
                # A grant is one reviewer's yes standing in for future calls: never for a quorum rule.
                yield _Problem.at(
                    ("rules", index, "grants"),
                    "a rule that needs several approvals cannot offer grants (one reviewer's yes)",
                )


def _duplicate_ids(rules: list[Any]) -> Iterator[_Problem]:
    first_use: dict[str, int] = {}
    for index, rule in enumerate(rules):
        rule_id = rule.get("id") if isinstance(rule, dict) else None
        if not isinstance(rule_id, str):
            continue
        if rule_id in first_use:
            yield _Problem.at(
                ("rules", index, "id"),
                f'"{rule_id}" is already the id of rules[{first_use[rule_id]}]; rule ids must be unique',
            )
        else:
            first_use[rule_id] = index


def _escalation_problems(at: Path, rule: dict[str, Any]) -> Iterator[_Problem]:
    # An escalation at or after the expiry would never happen; say so rather than keep it silently.
    after, timeout = rule.get("escalate_after"), rule.get("timeout")
    for present, missing in (("escalate_after", "escalate_to"), ("escalate_to", "escalate_after")):
        if present in rule and missing not in rule:
            yield _Problem.at(at, f'"{present}" needs "{missing}" beside it (when, and to whom, to escalate)')
    numbers = (int, float)
    if isinstance(after, numbers) and isinstance(timeout, numbers) and after >= timeout:
        yield _Problem.at(
            (*at, "escalate_after"), f"must be shorter than the rule's timeout ({timeout:g} s), or it never happens"
        )


def _condition_problems(at: Path, when: dict[str, Any]) -> Iterator[_Problem]:
    for path, condition in when.items():
        try:
            parse_path(path)
        except PathSyntaxError as exc:
            yield _Problem.at((*at, path), str(exc))
        pattern = condition.get("regex") if isinstance(condition, dict) else None
        if isinstance(pattern, str):
            try:
                re.compile(pattern)
            except re.error as exc:
                yield _Problem.at((*at, path, "regex"), f"invalid regular expression: {exc}")


# --- compiling -------------------------------------------------------------------------------


def compile_policy(document: Any, source: str = DEFAULT_SOURCE) -> CompiledPolicy:
    """Validate a parsed policy document and compile it for the engine.

    Raises:
        PolicyError: listing every problem found, sorted by location.
    """
    _raise_if_any(source, list(_depth_problems(document)))
    problems = [*_schema_problems(document), *_semantic_problems(document)]
    _raise_if_any(source, problems)
    document = copy.deepcopy(document)
    return CompiledPolicy(
        version=policy_version(document),
        source=source,
        document=document,
        default=document.get("default", "deny"),
        hide=document.get("hide", []),
        rules=[_compile_rule(index, rule) for index, rule in enumerate(document.get("rules", []))],
        annotation_defaults=_annotation_defaults(document),
    )


def policy_version(document: Any) -> str:
    """`sha256:` + 16 hex digits over the canonical JSON (sorted keys, no spaces, UTF-8)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _annotation_defaults(document: dict[str, Any]) -> dict[ToolClass, Action] | None:
    defaults: dict[ToolClass, Action] | None = document.get("annotation_defaults")
    return defaults


def _compile_rule(index: int, rule: dict[str, Any]) -> CompiledRule:
    tools = rule["tool"]
    return CompiledRule(
        tools=GlobSet([tools] if isinstance(tools, str) else tools),
        agents=GlobSet(rule["agents"]) if "agents" in rule else None,
        when=compile_when(rule["when"]) if "when" in rule else None,
        decision=_rule_decision(f"rules[{index}]", rule),
    )


def _rule_decision(name: str, rule: dict[str, Any]) -> Decision:
    limit = rule.get("rate_limit")
    reviewers = rule.get("reviewers")
    return Decision(
        action=rule["action"],
        rule=name,
        rule_id=rule.get("id"),
        reason=rule.get("reason"),
        rate_limit=RateLimit(int(limit["max"]), float(limit["window"])) if limit else None,
        rate_limit_key=rule.get("id", name) if limit else None,
        timeout=_seconds(rule.get("timeout")),
        hold=_seconds(rule.get("hold")),
        reviewers=tuple(reviewers) if reviewers is not None else None,
        approvals=int(rule.get("approvals", 1)),
        reviewer_groups=tuple(rule["reviewer_groups"]) if "reviewer_groups" in rule else None,
        routing=_routing(rule),
        escalate_after=_seconds(rule.get("escalate_after")),
        escalate_to=rule.get("escalate_to"),
        grants=_grants(rule.get("grants")),
    )


def _grants(grants: dict[str, Any] | None) -> GrantPolicy | None:
    if grants is None:
        return None
    return GrantPolicy(int(grants["max_minutes"]), tuple(grants.get("scope", ["identical"])))


def _seconds(value: float | None) -> float | None:
    return None if value is None else float(value)


def _routing(rule: dict[str, Any]) -> Routing:
    # The reviewer channels a rule may route (today Slack alone); each interprets its own object.
    return {channel: dict(rule[channel]) for channel in ROUTED_CHANNELS if rule.get(channel) is not None}


# --- files -----------------------------------------------------------------------------------


def read_policy_file(path: str | os.PathLike[str]) -> bytes:
    """Read a policy file's bytes.

    Raises:
        PolicyError: one problem naming the OS error.
    """
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise unreadable_file(path, exc) from None


def unreadable_file(path: str | os.PathLike[str], exc: OSError) -> PolicyError:
    """The error for a policy file that cannot be read: one problem naming the OS error."""
    code = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    message = f"cannot read the file: {exc.strerror or exc} ({code})"
    return PolicyError(os.fspath(path), [PolicyProblem("", message)])


def policy_from_bytes(data: bytes, source: str) -> CompiledPolicy:
    """Decode (UTF-8, BOM tolerated), parse strictly and compile a policy file's content.

    Raises:
        PolicyError: every problem found.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        problem = PolicyProblem(f"line {line}, column {column}", "the file is not UTF-8 text")
        raise PolicyError(source, [problem]) from None
    return compile_policy(parse_policy_text(text, source), source)


def load_policy(path: str | os.PathLike[str]) -> CompiledPolicy:
    """Read, validate and compile the policy file at `path`.

    Raises:
        PolicyError: the file cannot be read, or the policy is invalid (every problem listed).
    """
    return policy_from_bytes(read_policy_file(path), os.fspath(path))
