"""Why the policy decides a call the way it does: `explain(...)` → `Explanation`. Pure: no I/O.

`airlock policy explain` and `POST /api/policy/explain` answer "what would Airlock do with this
call?" with the decision and the reasons: which rule matched, why each earlier rule did not (its
tool patterns, its agents, or which `when` condition was false or indeterminate), whether `hide`,
a rate limit or `annotation_defaults` applied, and whether the tool's input schema would refuse the
arguments before the policy is consulted (as `app/gateway/intercept.py` does for an upstream with
`strict_arguments`).

Contract: the decision is `CompiledPolicy.evaluate`'s own, and a rule is reported as matching by
`CompiledRule.applies`, the method `evaluate` uses; the per-condition detail is only commentary on
that verdict, so an explanation can never contradict what the gateway does
(`tests/policy/test_explain.py` checks this on generated calls).

Not here: fetching the upstream's catalog (`app/policy/probe.py`), counting rate limits (an
explanation says which limit applies, not whether it is exhausted), rendering HTML.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

from app.policy.arguments import ArgumentProblem, compile_schema
from app.policy.conditions import Truth
from app.policy.document import format_location
from app.policy.engine import CompiledPolicy, CompiledRule, Decision, ToolClass, classify_tool

Outcome: TypeAlias = Literal["allow", "deny", "approve", "hidden", "invalid"]
ArgumentsStatus: TypeAlias = Literal["conforms", "refused", "not_checked"]

_INDETERMINATE: Final = "indeterminate (the argument is missing, or of a type the condition cannot judge)"
MCP_DEFAULTS_NOTE: Final = (
    "annotations are unknown, so annotation_defaults reads them as the MCP specification's "
    "defaults (readOnlyHint false, destructiveHint true): the tool counts as destructive"
)


@dataclass(frozen=True, slots=True)
class ToolFacts:
    """What the upstream's `tools/list` says about one tool."""

    annotations: Mapping[str, Any] | None
    input_schema: Any = None


@dataclass(frozen=True, slots=True)
class ConditionCheck:
    """One `when` entry's result for the call: True, False or None (indeterminate)."""

    path: str
    location: str
    result: Truth


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """One rule consulted for the call, in order, and why it did or did not decide it."""

    index: int
    rule_id: str | None
    action: str
    matched: bool
    why: str
    tool_pattern: str | None
    agent_pattern: str | None
    conditions: tuple[ConditionCheck, ...] = ()

    @property
    def location(self) -> str:
        return f"rules[{self.index}]"


@dataclass(frozen=True, slots=True)
class AnnotationUse:
    """Whether `annotation_defaults` decided the call, and from which annotations."""

    policy_uses: bool
    known: bool
    annotations: Mapping[str, Any] | None
    tool_class: ToolClass | None
    applied: bool
    note: str


@dataclass(frozen=True, slots=True)
class ArgumentsCheck:
    """The strict input-schema check the gateway runs before the policy (issue 10)."""

    status: ArgumentsStatus
    note: str
    problem: ArgumentProblem | None = None


@dataclass(frozen=True, slots=True)
class Explanation:
    """What the policy does with one call, and why.

    Attributes:
        outcome: what the agent gets: the policy's action, or `invalid` when the input-schema check
            refuses the arguments first.
        decision: the policy's decision (`CompiledPolicy.evaluate`), also when `outcome` is `invalid`.
        rules: the rules consulted, in order, up to and including the one that matched.
    """

    tool: str
    agent: str
    arguments: Mapping[str, Any]
    outcome: Outcome
    decision: Decision
    rules: tuple[RuleCheck, ...]
    annotations: AnnotationUse
    arguments_check: ArgumentsCheck
    in_catalog: bool | None
    policy_version: str
    policy_source: str


def explain(
    policy: CompiledPolicy,
    tool: str,
    arguments: Mapping[str, Any],
    agent: str,
    *,
    catalog: Mapping[str, ToolFacts] | None,
    strict_arguments: bool = True,
) -> Explanation:
    """Explain how `policy` decides a call of `tool` by `agent` with `arguments`.

    Args:
        catalog: the upstream's tools by name, or None when it is not known (not fetched, or the
            upstream is down): annotations then read as unknown and arguments go unchecked.
        strict_arguments: the upstream's setting; when on, a known input schema is checked first.

    Returns:
        The explanation; never raises for JSON-shaped input.
    """
    facts = None if catalog is None else catalog.get(tool)
    annotations = None if facts is None else facts.annotations
    decision = policy.evaluate(tool, arguments, agent, annotations)
    hidden = decision.action == "hidden"
    checks = () if hidden else _rule_checks(policy, tool, arguments, agent)
    arguments_check = (
        _arguments_check(facts, catalog is not None, arguments)
        if strict_arguments and not hidden
        else _unchecked(hidden)
    )
    outcome: Outcome = "invalid" if arguments_check.status == "refused" else decision.action
    return Explanation(
        tool=tool,
        agent=agent,
        arguments=arguments,
        outcome=outcome,
        decision=decision,
        rules=checks,
        annotations=_annotation_use(policy, decision, catalog is not None, facts),
        arguments_check=arguments_check,
        in_catalog=None if catalog is None else tool in catalog,
        policy_version=policy.version,
        policy_source=policy.source,
    )


def _rule_checks(policy: CompiledPolicy, tool: str, arguments: Mapping[str, Any], agent: str) -> tuple[RuleCheck, ...]:
    checks: list[RuleCheck] = []
    for index, rule in enumerate(policy.rules):
        check = check_rule(index, rule, tool, arguments, agent)
        checks.append(check)
        if check.matched:
            break
    return tuple(checks)


def check_rule(index: int, rule: CompiledRule, tool: str, arguments: Mapping[str, Any], agent: str) -> RuleCheck:
    """Whether rule `index` decides the call (by `CompiledRule.applies`, as `evaluate`), and why."""
    matched = rule.applies(tool, arguments, agent)
    where = f"rules[{index}]"
    tool_at = rule.tools.first_match(tool)
    tool_pattern = None if tool_at is None else rule.tools.patterns[tool_at]

    def checked(why: str, agent_pattern: str | None = None, conditions: tuple[ConditionCheck, ...] = ()) -> RuleCheck:
        return RuleCheck(
            index=index,
            rule_id=rule.decision.rule_id,
            action=rule.decision.action,
            matched=matched,
            why=why,
            tool_pattern=tool_pattern,
            agent_pattern=agent_pattern,
            conditions=conditions,
        )

    if tool_at is None:
        return checked(f"tool {_q(tool)} matches none of {where}.tool {_list(rule.tools.patterns)}")
    agent_pattern = None
    if rule.agents is not None:
        agent_at = rule.agents.first_match(agent)
        if agent_at is None:
            return checked(f"agent {_q(agent)} matches none of {where}.agents {_list(rule.agents.patterns)}")
        agent_pattern = rule.agents.patterns[agent_at]
    conditions = _condition_checks(index, rule, arguments)
    return checked(_when_why(rule, conditions, matched), agent_pattern, conditions)


def _condition_checks(index: int, rule: CompiledRule, arguments: Mapping[str, Any]) -> tuple[ConditionCheck, ...]:
    if rule.when is None:
        return ()
    return tuple(
        ConditionCheck(c.path, format_location(("rules", index, "when", c.path)), c.evaluate(arguments))
        for c in rule.when.conditions
    )


def _when_why(rule: CompiledRule, conditions: tuple[ConditionCheck, ...], matched: bool) -> str:
    if rule.when is None:
        return "tool and agents match, and it has no when"
    false = [c.location for c in conditions if c.result is False]
    unknown = [c.location for c in conditions if c.result is None]
    if false:
        return f"{' and '.join(false)} {'is' if len(false) == 1 else 'are'} false"
    if not unknown:
        return "tool and agents match, and every when condition holds"
    subject = f"{' and '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} {_INDETERMINATE}"
    if matched:
        return (
            f"fail closed: {subject}, which counts as a match for "
            f"{'an' if rule.decision.action == 'approve' else 'a'} {rule.decision.action} rule"
        )
    return f"{subject}, which counts as no match for an allow rule (fail closed)"


def _annotation_use(
    policy: CompiledPolicy, decision: Decision, fetched: bool, facts: ToolFacts | None
) -> AnnotationUse:
    applied = decision.rule.startswith("annotation_defaults.")
    known = facts is not None
    annotations = None if facts is None else facts.annotations
    if not policy.uses_annotations:
        return AnnotationUse(False, known, annotations, None, False, "the policy has no annotation_defaults")
    tool_class = classify_tool(annotations)
    if decision.action == "hidden" or decision.rule.startswith("rules["):
        note = "not consulted: " + ("the tool is hidden" if decision.action == "hidden" else "a rule decided")
    elif not known:
        where = "the upstream's catalog lacks this tool" if fetched else "the upstream's catalog was not fetched"
        note = f"{where}; {MCP_DEFAULTS_NOTE}"
    else:
        note = f"the upstream's annotations {_annotation_text(annotations)} put the tool in class {tool_class}"
    if not applied and not decision.rule.startswith("rules[") and decision.action != "hidden":
        note += f"; annotation_defaults has no action for {tool_class}, so default decides"
    return AnnotationUse(True, known, annotations, tool_class, applied, note)


def _annotation_text(annotations: Mapping[str, Any] | None) -> str:
    return "(none)" if annotations is None else json.dumps(dict(annotations), sort_keys=True)


def _unchecked(hidden: bool) -> ArgumentsCheck:
    why = "the tool is hidden" if hidden else "the upstream has strict_arguments = false"
    return ArgumentsCheck("not_checked", f"not checked: {why}")


def _arguments_check(facts: ToolFacts | None, fetched: bool, arguments: Mapping[str, Any]) -> ArgumentsCheck:
    if not fetched:
        return ArgumentsCheck(
            "not_checked",
            "not checked: the upstream's tools/list was not fetched, so the tool's inputSchema is unknown",
        )
    schema = None if facts is None else compile_schema(facts.input_schema)
    if schema is None:
        return ArgumentsCheck(
            "not_checked",
            "not checked: the upstream publishes no usable inputSchema for "
            "this tool, so the policy alone judges the call",
        )
    problem = schema.check(arguments)
    if problem is None:
        return ArgumentsCheck("conforms", "conform to the tool's inputSchema")
    return ArgumentsCheck("refused", f"refused by the tool's inputSchema before the policy: {problem.text}", problem)


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _list(patterns: tuple[str, ...]) -> str:
    return "[" + ", ".join(_q(p) for p in patterns) + "]"


# --- rendering ---------------------------------------------------------------------------------


def explanation_json(explanation: Explanation, *, upstream: str | None = None) -> dict[str, Any]:
    """The JSON form, as `airlock policy explain --json` prints and the API returns it."""
    e = explanation
    decision = e.decision
    limit = decision.rate_limit
    return {
        "upstream": upstream,
        "tool": e.tool,
        "agent": e.agent,
        "arguments": dict(e.arguments),
        "outcome": e.outcome,
        "decision": {
            "action": decision.action,
            "rule": decision.rule,
            "rule_id": decision.rule_id,
            "reason": decision.reason,
        },
        "hidden_by": decision.rule if decision.action == "hidden" else None,
        "rate_limit": None
        if limit is None
        else {"max": limit.max, "window": limit.window, "key": decision.rate_limit_key},
        "rules": [_rule_json(check) for check in e.rules],
        "annotations": {
            "policy_uses": e.annotations.policy_uses,
            "known": e.annotations.known,
            "values": None if e.annotations.annotations is None else dict(e.annotations.annotations),
            "class": e.annotations.tool_class,
            "applied": e.annotations.applied,
            "note": e.annotations.note,
        },
        "arguments_check": {
            "status": e.arguments_check.status,
            "note": e.arguments_check.note,
            "problem": None
            if e.arguments_check.problem is None
            else {"path": e.arguments_check.problem.path, "text": e.arguments_check.problem.text},
        },
        "in_catalog": e.in_catalog,
        "policy": {"source": e.policy_source, "version": e.policy_version},
    }


def _rule_json(check: RuleCheck) -> dict[str, Any]:
    return {
        "rule": check.location,
        "id": check.rule_id,
        "action": check.action,
        "matched": check.matched,
        "why": check.why,
        "tool_pattern": check.tool_pattern,
        "agent_pattern": check.agent_pattern,
        "conditions": [
            {
                "path": c.path,
                "location": c.location,
                "result": {True: "true", False: "false", None: "indeterminate"}[c.result],
            }
            for c in check.conditions
        ],
    }


def explanation_text(explanation: Explanation, *, upstream: str | None = None) -> str:
    """The readable form `airlock policy explain` prints: one fact per line."""
    e = explanation
    d = e.decision
    on = f" on {upstream}" if upstream else ""
    lines = [f"{e.tool} by {e.agent}{on}: {e.outcome.upper()}"]
    if e.outcome == "invalid":
        lines.append(f"  {e.arguments_check.note}")
        lines.append(f"  (with valid arguments the policy would say {d.action}, by {_decided_by(d)})")
    else:
        lines.append(f"  decided by {_decided_by(d)}" + (f": {d.reason}" if d.reason else ""))
    if d.action == "hidden":
        lines.append(f"  {d.rule} hides the tool: it is missing from tools/list and a call is refused as unknown")
    for check in e.rules:
        lines.append(f"  {check.location} ({check.action}): {'MATCH' if check.matched else 'no match'}: {check.why}")
    if d.rate_limit is not None:
        lines.append(
            f"  rate limit: at most {d.rate_limit.max} calls per {d.rate_limit.window:g} s per agent "
            f"(counter {d.rate_limit_key}); explain does not count calls"
        )
    lines.append(f"  annotations: {e.annotations.note}")
    lines.append(f"  arguments: {e.arguments_check.note}")
    if e.in_catalog is False:
        lines.append(f"  note: the upstream's catalog has no tool named {_q(e.tool)}")
    lines.append(f"  policy: {e.policy_source} ({e.policy_version})")
    return "\n".join(lines)


def _decided_by(decision: Decision) -> str:
    if decision.rule_id:
        return f'{decision.rule} (id "{decision.rule_id}")'
    return decision.rule
