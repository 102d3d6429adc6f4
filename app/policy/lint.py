"""Warnings about a valid policy that does not do what it says: rules that can never match.

`document.py` refuses a policy that is *invalid*; this module reads a valid one and points at
rules that cannot take effect, for `airlock policy check`:

- **shadowed**: an earlier rule already decides every call the rule could match;
- **hidden**: every tool the rule names is hidden by `hide`, so no rule is consulted for it;
- **impossible quorum**: a rule needs more approvals than it names reviewers (and names no group),
  so its calls can only expire;
- with the upstream's catalog (`lint_against_catalog`): tool patterns that match no tool the
  upstream has, and `when` paths the tool's `inputSchema` does not declare.

Deliberately conservative, DO NOT widen without reading why: a warning must be certain, since
`--strict` turns warnings into a failing exit status. "Rule i covers rule j" is claimed only when
i has no `when` (or exactly the same `when`, and i matches at least whenever j does under fail
closed), each of j's tool patterns is covered by one of i's (the same glob, `*`, or a glob that
matches j's pattern when that pattern is a literal name), and i's agents cover j's agents the same
way. Overlapping globs (`em_*` vs `em_get_*`) are never claimed. An inputSchema path is reported
only where the schema plainly declares the object's `properties` and nothing else could admit the
key (no `additionalProperties` schema, `patternProperties`, `anyOf`/`oneOf`/`allOf`, `$ref`...).

Pure: takes the validated document (and the catalog as data) and returns findings; no I/O.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from app.identity import identity_key
from app.policy.conditions import PathSyntaxError, Segment, parse_path
from app.policy.document import format_location

_GLOB_CHARS: Final = frozenset("*?[")
_UNDECIDABLE_KEYS: Final = frozenset(
    {
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "if",
        "$ref",
        "$dynamicRef",
        "patternProperties",
        "dependentSchemas",
        "unevaluatedProperties",
    }
)


@dataclass(frozen=True, order=True, slots=True)
class Finding:
    """One warning: where in the document (`rules[3]`, `rules[1].when.amount`) and what is wrong."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


def is_literal(pattern: str) -> bool:
    """True when `pattern` has no glob characters, so it names exactly one tool or agent."""
    return not _GLOB_CHARS.intersection(pattern)


def glob_covers(wide: str, narrow: str) -> bool:
    """True when every name `narrow` matches is certainly matched by `wide`."""
    return wide == narrow or wide == "*" or (is_literal(narrow) and fnmatch.fnmatchcase(narrow, wide))


def _covering(wide: Sequence[str], narrow: str) -> str | None:
    return next((pattern for pattern in wide if glob_covers(pattern, narrow)), None)


def _patterns(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _agents_cover(earlier: dict[str, Any], later: dict[str, Any]) -> bool:
    if "agents" not in earlier:
        return True
    if "agents" not in later:
        return "*" in earlier["agents"]
    return all(_covering(earlier["agents"], agent) is not None for agent in later["agents"])


def _when_covers(earlier: dict[str, Any], later: dict[str, Any]) -> bool:
    """Whether `earlier`'s `when` matches every call `later`'s does.

    With the same `when`, indeterminate is the only difference: it matches deny and approve rules
    and not allow rules, so an allow rule covers only another allow rule.
    """
    if "when" not in earlier:
        return True
    same_when: bool = earlier["when"] == later.get("when")
    return same_when and (earlier["action"] != "allow" or later["action"] == "allow")


def _rules(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    rules = document.get("rules", [])
    return rules if isinstance(rules, list) else []


def lint(document: Mapping[str, Any]) -> list[Finding]:
    """Rules of a valid policy document that can never decide a call, in document order."""
    findings: list[Finding] = []
    hide = list(document.get("hide", []))
    rules = _rules(document)
    for index, rule in enumerate(rules):
        findings.extend(_unreachable(index, rule, rules[:index], hide))
        findings.extend(_impossible_quorum(index, rule))
    return sorted(findings, key=lambda f: (_order(f.location), f.message))


def _impossible_quorum(index: int, rule: dict[str, Any]) -> list[Finding]:
    needed = rule.get("approvals", 1)
    if "reviewer_groups" in rule or "reviewers" not in rule:
        return []
    named = {identity_key(name) for name in rule["reviewers"]}
    if needed <= len(named):
        return []
    return [
        Finding(
            f"rules[{index}].approvals",
            f"needs {needed} approvals but names only {len(named)} reviewer{'s' if len(named) != 1 else ''}"
            " (and no reviewer_groups): its calls can never be approved, only expire",
        )
    ]


def _order(location: str) -> tuple[int, str]:
    index = location[len("rules[") :].split("]", 1)[0]
    return (int(index), location) if index.isdigit() else (-1, location)


def _unreachable(index: int, rule: dict[str, Any], earlier: list[dict[str, Any]], hide: list[str]) -> list[Finding]:
    tools = _patterns(rule["tool"])
    blockers = [_blocker(pattern, earlier, rule, hide) for pattern in tools]
    where = f"rules[{index}]"
    if all(blocker is not None for blocker in blockers):
        reasons = "; ".join(dict.fromkeys(b for b in blockers if b is not None))
        return [Finding(where, f"never matches: {reasons}")]
    if not isinstance(rule["tool"], list):
        return []
    return [
        Finding(f"{where}.tool[{k}]", f"this pattern never matches: {blocker}")
        for k, blocker in enumerate(blockers)
        if blocker is not None
    ]


def _blocker(pattern: str, earlier: list[dict[str, Any]], rule: dict[str, Any], hide: list[str]) -> str | None:
    """Why no call to a tool `pattern` matches can reach `rule`, or None if one may."""
    hidden_by = _covering(hide, pattern)
    if hidden_by is not None:
        return (
            f'tools matching "{pattern}" are hidden by hide[{hide.index(hidden_by)}] ("{hidden_by}"), and no '
            "rule is consulted for a hidden tool"
        )
    for position, other in enumerate(earlier):
        covering = _covering(_patterns(other["tool"]), pattern)
        if covering is None or not _agents_cover(other, rule) or not _when_covers(other, rule):
            continue
        kind = "a catch-all" if covering == "*" and "agents" not in other and "when" not in other else "an earlier rule"
        condition = "with the same when" if "when" in other else "with no when"
        return (
            f'rules[{position}] ({kind}, tool "{covering}", {condition}) already decides every call '
            f'to "{pattern}" {_by(rule)}'
        )
    return None


def _by(rule: dict[str, Any]) -> str:
    return "by any agent" if "agents" not in rule else "by " + ", ".join(f'"{a}"' for a in rule["agents"])


# --- against the upstream's catalog -------------------------------------------------------------


def lint_against_catalog(document: Mapping[str, Any], schemas: Mapping[str, Any], upstream: str) -> list[Finding]:
    """Tool patterns that match none of the upstream's tools, and `when` paths their inputSchema lacks.

    Args:
        schemas: the upstream's tools by name, each with its published `inputSchema` (None if none).
        upstream: the upstream's name, for the messages.
    """
    findings: list[Finding] = []
    for index, pattern in enumerate(document.get("hide", [])):
        if not _matches_any(pattern, schemas):
            findings.append(Finding(f"hide[{index}]", f'"{pattern}" matches no tool of upstream {upstream}'))
    for index, rule in enumerate(_rules(document)):
        findings.extend(_unknown_tools(index, rule, schemas, upstream))
        findings.extend(_unknown_paths(index, rule, schemas))
    return sorted(findings, key=lambda f: (_order(f.location), f.message))


def _matches_any(pattern: str, tools: Mapping[str, Any]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for name in tools)


def _unknown_tools(index: int, rule: dict[str, Any], schemas: Mapping[str, Any], upstream: str) -> list[Finding]:
    tools = rule["tool"]
    findings = []
    for k, pattern in enumerate(_patterns(tools)):
        if not _matches_any(pattern, schemas):
            at = ("rules", index, "tool", k) if isinstance(tools, list) else ("rules", index, "tool")
            findings.append(Finding(format_location(at), f'"{pattern}" matches no tool of upstream {upstream}'))
    return findings


def _unknown_paths(index: int, rule: dict[str, Any], schemas: Mapping[str, Any]) -> list[Finding]:
    names = _patterns(rule["tool"])
    if "when" not in rule or not all(is_literal(n) and n in schemas for n in names):
        return []
    findings = []
    for path in rule["when"]:
        missing = [name for name in names if _path_undeclared(schemas[name], path)]
        if missing:
            which = ", ".join(f'"{n}"' for n in missing)
            findings.append(
                Finding(
                    format_location(("rules", index, "when", path)),
                    f"the inputSchema of {which} declares no argument at this path; the condition "
                    "reads a missing argument (indeterminate) on every valid call",
                )
            )
    return findings


def _path_undeclared(schema: Any, path: str) -> bool:
    """True only when `schema` certainly declares nothing at `path`; False when it does or cannot tell."""
    try:
        segments = parse_path(path)
    except PathSyntaxError:
        return False
    return _undeclared(schema, segments)


def _undeclared(schema: Any, segments: Sequence[Segment]) -> bool:
    if not segments:
        return False
    if not isinstance(schema, dict) or _UNDECIDABLE_KEYS.intersection(schema):
        return False
    first, rest = segments[0], segments[1:]
    items = schema.get("items")
    if first.index is not None and isinstance(items, dict) and "properties" not in schema:
        return _undeclared(items, rest)
    properties = schema.get("properties")
    if not isinstance(properties, dict) or isinstance(schema.get("additionalProperties"), dict):
        return False
    if first.key not in properties:
        return True
    return _undeclared(properties[first.key], rest)
