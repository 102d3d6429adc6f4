"""Deciding calls from a compiled policy: hide, first-match rules, fail closed, annotations.

Airlock-defined, except the annotation classes, which follow the MCP specification's
ToolAnnotations defaults (readOnlyHint false, destructiveHint true).
"""

from __future__ import annotations

from typing import Any

import pytest

from app.policy.document import compile_policy
from app.policy.engine import Action, CompiledPolicy, Decision, RateLimit, classify_tool

SEED = {"version": "1", "default": "deny", "hide": ["em_cancel_task"]}

EXAMPLE = {
    "version": "1",
    "default": "deny",
    "hide": ["em_wipe_all"],
    "rules": [
        {
            "tool": "em_publish_task",
            "agents": ["intern-bot"],
            "action": "deny",
            "reason": "interns cannot publish",
        },
        {
            "tool": "em_publish_task",
            "when": {"bounty_usd": {"gt": 100}},
            "action": "approve",
            "reason": "large bounty",
        },
        {"tool": "em_publish_task", "action": "allow", "rate_limit": {"max": 10, "window": 60}},
        {"tool": "em_get_*", "action": "allow"},
        {
            "tool": "em_cancel_task",
            "action": "approve",
            "reason": "cancelling is irreversible",
            "timeout": 1800,
        },
    ],
}


def policy(**fields: Any) -> CompiledPolicy:
    return compile_policy({"version": "1", **fields})


# --- the seed document and the reference example -------------------------------------------


def test_the_seed_policy_denies_by_default_and_hides_em_cancel_task() -> None:
    seed = compile_policy(SEED)
    assert seed.is_hidden("em_cancel_task")
    assert not seed.is_hidden("em_get_task")
    assert seed.evaluate("em_get_task", {}, "agent") == Decision("deny", "default", None, None)
    assert seed.evaluate("em_cancel_task", {}, "agent") == Decision("hidden", "hide[0]", None, None)


@pytest.mark.parametrize(
    ("tool", "arguments", "agent", "expected"),
    [
        (
            "em_publish_task",
            {"bounty_usd": 500},
            "intern-bot",
            Decision("deny", "rules[0]", None, "interns cannot publish"),
        ),
        (
            "em_publish_task",
            {"bounty_usd": 150},
            "ops-bot",
            Decision("approve", "rules[1]", None, "large bounty"),
        ),
        (
            "em_publish_task",
            {"bounty_usd": 50},
            "ops-bot",
            Decision(
                "allow",
                "rules[2]",
                None,
                None,
                rate_limit=RateLimit(max=10, window=60.0),
                rate_limit_key="rules[2]",
            ),
        ),
        ("em_get_task", {"task_id": "t1"}, "ops-bot", Decision("allow", "rules[3]", None, None)),
        (
            "em_cancel_task",
            {"task_id": "t1"},
            "ops-bot",
            Decision("approve", "rules[4]", None, "cancelling is irreversible", timeout=1800.0),
        ),
        ("em_wipe_all", {}, "ops-bot", Decision("hidden", "hide[0]", None, None)),
        ("em_unknown", {}, "ops-bot", Decision("deny", "default", None, None)),
    ],
)
def test_the_reference_example_decides_exactly_as_written(
    tool: str, arguments: dict[str, Any], agent: str, expected: Decision
) -> None:
    assert compile_policy(EXAMPLE).evaluate(tool, arguments, agent) == expected


@pytest.mark.parametrize(
    ("arguments", "action"),
    [
        ({}, "approve"),
        ({"bounty_usd": "150"}, "approve"),
        ({"bounty_usd": "a lot"}, "approve"),
        ({"bounty_usd": True}, "approve"),
        ({"bounty_usd": "50"}, "allow"),
    ],
)
def test_the_reference_example_parks_a_publish_whose_bounty_it_cannot_read(
    arguments: dict[str, Any], action: str
) -> None:
    assert compile_policy(EXAMPLE).evaluate("em_publish_task", arguments, "ops-bot").action == action


def test_the_rate_limit_key_is_stable_and_prefers_the_rule_id() -> None:
    rules = [
        {"tool": "a", "action": "allow", "rate_limit": {"max": 1, "window": 1}},
        {"id": "b-limit", "tool": "b", "action": "allow", "rate_limit": {"max": 2, "window": 0.5}},
    ]
    compiled = policy(rules=rules)
    first = compiled.evaluate("a", {}, "x")
    assert first.rate_limit_key == "rules[0]"
    assert compiled.evaluate("a", {}, "y") is first
    second = compiled.evaluate("b", {}, "x")
    assert (second.rule, second.rule_id, second.rate_limit_key) == (
        "rules[1]",
        "b-limit",
        "b-limit",
    )
    assert second.rate_limit == RateLimit(2, 0.5)


def test_an_approve_rule_reports_its_timeout_hold_reviewers_and_slack_routing() -> None:
    rule = {
        "id": "refunds",
        "tool": "refund",
        "action": "approve",
        "timeout": 600,
        "hold": 2.5,
        "reviewers": ["alice", "bob"],
        "slack": {"channel": "#approvals", "users": ["U1"], "usergroups": ["S1"]},
        "rate_limit": {"max": 3, "window": 3600},
    }
    assert policy(rules=[rule]).evaluate("refund", {}, "x") == Decision(
        "approve",
        "rules[0]",
        "refunds",
        None,
        rate_limit=RateLimit(3, 3600.0),
        rate_limit_key="refunds",
        timeout=600.0,
        hold=2.5,
        reviewers=("alice", "bob"),
        routing={"slack": {"channel": "#approvals", "users": ["U1"], "usergroups": ["S1"]}},
    )


def test_slack_routing_is_kept_as_written_for_the_slack_channel_to_interpret() -> None:
    rule = {"tool": "t", "action": "approve", "slack": {"users": ["U1"]}}
    decision = policy(rules=[rule]).evaluate("t", {}, "x")
    assert decision.routing == {"slack": {"users": ["U1"]}}
    assert decision.reviewers is None


def test_a_rule_without_routing_routes_nowhere_in_particular() -> None:
    decision = policy(rules=[{"tool": "t", "action": "approve"}]).evaluate("t", {}, "x")
    assert decision.routing == {}


# --- ordering, globs and agents -------------------------------------------------------------


def test_the_first_matching_rule_decides_even_when_a_later_one_is_more_specific() -> None:
    compiled = policy(
        rules=[
            {"tool": "em_*", "action": "allow"},
            {"tool": "em_delete", "action": "deny"},
        ]
    )
    assert compiled.evaluate("em_delete", {}, "x").rule == "rules[0]"


@pytest.mark.parametrize(("default", "expected"), [(None, "deny"), ("allow", "allow"), ("approve", "approve")])
def test_the_default_applies_when_no_rule_matches_and_is_deny_when_omitted(
    default: str | None, expected: Action
) -> None:
    fields = {} if default is None else {"default": default}
    assert policy(**fields).evaluate("anything", {}, "x") == Decision(expected, "default", None, None)


@pytest.mark.parametrize(
    ("pattern", "tool", "matches"),
    [
        ("em_get_*", "em_get_task", True),
        ("em_get_*", "em_get_", True),
        ("em_get_*", "xem_get_task", False),
        ("em_get_*", "EM_GET_TASK", False),
        ("em_?et", "em_get", True),
        ("em_?et", "em_gget", False),
        ("em_[gs]et", "em_set", True),
        ("em_[!gs]et", "em_set", False),
        ("em_[!gs]et", "em_bet", True),
        ("*", "anything", True),
        ("a.b", "a.b", True),
        ("a.b", "axb", False),
    ],
)
def test_tool_patterns_are_case_sensitive_fnmatch_globs(pattern: str, tool: str, matches: bool) -> None:
    compiled = policy(hide=[pattern], rules=[{"tool": pattern, "action": "allow"}])
    assert compiled.is_hidden(tool) is matches
    assert (compiled.evaluate(tool, {}, "x").action == "hidden") is matches


def test_hide_star_hides_every_tool() -> None:
    compiled = policy(hide=["*"], rules=[{"tool": "*", "action": "allow"}])
    assert compiled.evaluate("em_get_task", {}, "x") == Decision("hidden", "hide[0]", None, None)


def test_hide_is_checked_before_any_rule_and_names_the_pattern_that_hid() -> None:
    compiled = policy(hide=["x_*", "em_*"], rules=[{"tool": "em_secret", "action": "allow"}])
    assert compiled.evaluate("em_secret", {}, "x").rule == "hide[1]"


def test_a_rule_with_a_list_of_tools_matches_any_of_them() -> None:
    compiled = policy(rules=[{"tool": ["em_get_*", "em_list"], "action": "allow"}])
    assert [compiled.evaluate(t, {}, "x").action for t in ["em_list", "em_get_a", "em_put"]] == [
        "allow",
        "allow",
        "deny",
    ]


@pytest.mark.parametrize(
    ("agent", "action"),
    [("ops-bot", "allow"), ("ops-bot-2", "allow"), ("auditor", "allow"), ("intern", "deny")],
)
def test_agents_restrict_a_rule_to_matching_identities(agent: str, action: str) -> None:
    compiled = policy(rules=[{"tool": "*", "agents": ["ops-*", "auditor"], "action": "allow"}])
    assert compiled.evaluate("em_get_task", {}, agent).action == action


# --- fail closed ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "arguments", "matches"),
    [
        ("deny", {}, True),
        ("deny", {"amount": {"value": 5}}, True),
        ("approve", {}, True),
        ("approve", {"amount": [5]}, True),
        ("allow", {}, False),
        ("allow", {"amount": "five"}, False),
        ("deny", {"amount": 5}, False),
        ("allow", {"amount": 500}, True),
    ],
)
def test_an_indeterminate_condition_matches_restrictive_rules_and_never_an_allow_rule(
    action: str, arguments: dict[str, Any], matches: bool
) -> None:
    compiled = policy(
        default="approve" if action == "deny" else "deny",
        rules=[{"tool": "pay", "when": {"amount": {"gt": 100}}, "action": action}],
    )
    assert (compiled.evaluate("pay", arguments, "x").rule == "rules[0]") is matches


def test_a_definite_false_beats_an_indeterminate_condition_even_for_deny() -> None:
    compiled = policy(
        default="allow",
        rules=[{"tool": "pay", "when": {"currency": "EUR", "amount": {"gt": 100}}, "action": "deny"}],
    )
    assert compiled.evaluate("pay", {"currency": "USD"}, "x").rule == "default"
    assert compiled.evaluate("pay", {"currency": "EUR"}, "x").rule == "rules[0]"


def test_a_missing_argument_cannot_slip_past_a_deny_to_a_later_allow() -> None:
    compiled = policy(
        rules=[
            {"tool": "ship", "when": {"/address/country": {"in": ["KP", "IR"]}}, "action": "deny"},
            {"tool": "ship", "when": {"address.country": {"exists": True}}, "action": "allow"},
        ]
    )
    assert compiled.evaluate("ship", {"address": {"country": "DE"}}, "x").action == "allow"
    assert compiled.evaluate("ship", {"address": {"country": "KP"}}, "x").action == "deny"
    assert compiled.evaluate("ship", {"address": "KP"}, "x").rule == "rules[0]"
    assert compiled.evaluate("ship", {}, "x").rule == "rules[0]"


# --- issue 10: the arguments as the upstream may read them ---------------------------------

COERCED_TRUE = ["true", "True", "1", "yes", "on", 1, 1.0]
OPERATOR_CASES = [
    # (when, a call the upstream may read as matching `when`)
    ({"force": True}, {"force": value})
    for value in COERCED_TRUE
] + [
    ({"force": {"in": [True]}}, {"force": "yes"}),
    ({"limit": 150}, {"limit": "150"}),
    ({"limit": {"in": [150, 200]}}, {"limit": " 150 "}),
    ({"recipients": {"contains": "ceo@corp.com"}}, {"recipients": '["ceo\\u0040corp.com"]'}),
    ({"options": {"eq": {"force": True}}}, {"options": '{"force": true}'}),
    ({"options.force": {"exists": True}}, {"options": '{"force": 1}'}),
    ({"name": {"in": ["root"]}}, {"name": '["root"]'}),
]


@pytest.mark.parametrize(("when", "arguments"), OPERATOR_CASES)
def test_issue10_a_deny_rule_catches_arguments_a_lax_upstream_coerces_into_a_match(
    when: dict[str, Any], arguments: dict[str, Any]
) -> None:
    compiled = policy(rules=[{"tool": "t", "when": when, "action": "deny"}, {"tool": "t", "action": "allow"}])
    assert compiled.evaluate("t", arguments, "x").rule == "rules[0]"


@pytest.mark.parametrize(("when", "arguments"), OPERATOR_CASES)
def test_issue10_an_allow_rule_never_admits_arguments_it_could_only_read_one_way(
    when: dict[str, Any], arguments: dict[str, Any]
) -> None:
    """The same calls against a restrictive `when` turned into a permission: not a match."""
    negated = {path: _negation(spec) for path, spec in when.items()}
    compiled = policy(default="approve", rules=[{"tool": "t", "when": negated, "action": "allow"}])
    assert compiled.evaluate("t", arguments, "x").rule == "default"


def _negation(spec: Any) -> Any:
    operators = spec if isinstance(spec, dict) else {"eq": spec}
    ((name, operand),) = operators.items()
    flipped = {"eq": "ne", "ne": "eq", "in": "not_in", "not_in": "in"}
    if name in flipped:
        return {flipped[name]: operand}
    return {"exists": not operand} if name == "exists" else {"regex": "(?!.*ceo@corp[.]com).*"}


@pytest.mark.parametrize(
    ("force", "action"),
    [
        (True, "deny"),
        (False, "allow"),
        *((value, "deny") for value in ["true", "yes", 1, "false", 0, None, "banana"]),
    ],
)
def test_issue10_the_documented_force_table_decides_as_written(force: Any, action: str) -> None:
    """docs/policy.md, "Arguments as the upstream reads them"."""
    compiled = policy(
        rules=[{"tool": "deploy", "when": {"force": True}, "action": "deny"}, {"tool": "deploy", "action": "allow"}]
    )
    assert compiled.evaluate("deploy", {"force": force}, "x").action == action


def test_issue10_an_anchored_allow_regex_does_not_admit_a_trailing_newline() -> None:
    compiled = policy(rules=[{"tool": "t", "when": {"name": {"regex": "^[a-z]+$"}}, "action": "allow"}])
    assert compiled.evaluate("t", {"name": "abc"}, "x").action == "allow"
    assert compiled.evaluate("t", {"name": "abc\n"}, "x").action == "deny"


# --- annotation_defaults --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "tool_class"),
    [
        ({"readOnlyHint": True}, "read_only"),
        ({"readOnlyHint": True, "destructiveHint": True}, "read_only"),
        ({"readOnlyHint": False, "destructiveHint": False}, "additive"),
        ({"destructiveHint": False}, "additive"),
        ({"destructiveHint": True}, "destructive"),
        ({"readOnlyHint": False}, "destructive"),
        ({"title": "Get task"}, "destructive"),
        ({}, "destructive"),
        (None, "destructive"),
        ({"readOnlyHint": "true"}, "destructive"),
        ({"destructiveHint": 0}, "destructive"),
    ],
)
def test_tools_are_classified_from_mcp_annotations_with_the_spec_defaults(
    annotations: dict[str, Any] | None, tool_class: str
) -> None:
    assert classify_tool(annotations) == tool_class


ANNOTATED = {
    "default": "deny",
    "annotation_defaults": {"read_only": "allow", "destructive": "approve"},
    "rules": [{"tool": "em_get_secret", "action": "deny"}],
}


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({"readOnlyHint": True}, Decision("allow", "annotation_defaults.read_only", None, None)),
        (
            {"destructiveHint": True},
            Decision("approve", "annotation_defaults.destructive", None, None),
        ),
        ({}, Decision("approve", "annotation_defaults.destructive", None, None)),
        (None, Decision("approve", "annotation_defaults.destructive", None, None)),
        ({"destructiveHint": False}, Decision("deny", "default", None, None)),
    ],
)
def test_annotation_defaults_decide_unmatched_calls_by_class_else_the_default_applies(
    annotations: dict[str, Any] | None, expected: Decision
) -> None:
    assert policy(**ANNOTATED).evaluate("em_do", {}, "x", annotations) == expected


def test_annotation_defaults_never_override_a_matching_rule_or_hide() -> None:
    compiled = policy(hide=["em_hidden"], **ANNOTATED)
    read_only = {"readOnlyHint": True}
    assert compiled.evaluate("em_get_secret", {}, "x", read_only).rule == "rules[0]"
    assert compiled.evaluate("em_hidden", {}, "x", read_only).action == "hidden"


def test_annotations_are_ignored_by_a_policy_without_annotation_defaults() -> None:
    assert policy().evaluate("t", {}, "x", {"readOnlyHint": True}).rule == "default"


@pytest.mark.parametrize(
    ("fields", "tool", "needs"),
    [
        (ANNOTATED, "em_do", True),
        (ANNOTATED, "em_get_secret", False),
        ({**ANNOTATED, "hide": ["em_do"]}, "em_do", False),
        ({"rules": [{"tool": "em_do", "action": "allow"}]}, "em_other", False),
        ({"annotation_defaults": {}}, "em_do", True),
    ],
)
def test_needs_annotations_is_true_only_when_evaluate_would_consult_them(
    fields: dict[str, Any], tool: str, needs: bool
) -> None:
    compiled = policy(**fields)
    assert compiled.uses_annotations is ("annotation_defaults" in fields)
    assert compiled.needs_annotations(tool, {}, "x") is needs


# --- identity of a compiled policy ---------------------------------------------------------


def test_the_version_is_a_short_sha256_of_the_canonical_document() -> None:
    first = compile_policy({"version": "1", "default": "deny", "hide": ["a"]})
    reordered = compile_policy({"hide": ["a"], "default": "deny", "version": "1"})
    changed = compile_policy({"version": "1", "default": "deny", "hide": ["b"]})
    assert first.version == reordered.version != changed.version
    assert first.version.startswith("sha256:")
    assert len(first.version) == len("sha256:") + 16
    assert first.source == "<policy>"


def test_a_compiled_policy_keeps_its_own_copy_of_the_document() -> None:
    document: dict[str, Any] = {"version": "1", "rules": [{"tool": "a", "action": "allow"}]}
    compiled = compile_policy(document)
    document["rules"][0]["action"] = "deny"
    assert compiled.document["rules"][0]["action"] == "allow"
    assert compiled.evaluate("a", {}, "x").action == "allow"


def test_decisions_cached_per_tool_name_still_depend_on_agent_and_arguments() -> None:
    """Airlock-defined: the per-tool-name rule cache must not change any decision."""
    policy = compile_policy(
        {
            "version": "1",
            "default": "deny",
            "hide": ["x_*"],
            "rules": [
                {"tool": "pay", "agents": ["intern-*"], "action": "deny"},
                {"tool": "pay", "when": {"amount": {"gt": 100}}, "action": "approve"},
                {"tool": "p*", "action": "allow"},
            ],
        }
    )
    calls = [
        ("pay", {"amount": 5}, "intern-1", "deny"),
        ("pay", {"amount": 500}, "bot", "approve"),
        ("pay", {"amount": 5}, "bot", "allow"),
        ("ping", {}, "intern-1", "allow"),
        ("x_pay", {}, "bot", "hidden"),
        ("other", {}, "bot", "deny"),
    ]
    for _ in range(2):  # the second round is served from the cache
        assert [policy.evaluate(t, a, g).action for t, a, g, _ in calls] == [e for *_, e in calls]


def test_a_thousand_rule_policy_finds_its_last_rule() -> None:
    rules = [{"tool": f"tool_{i}", "action": "deny"} for i in range(1000)]
    policy = compile_policy({"version": "1", "default": "deny", "rules": [*rules, {"tool": "last", "action": "allow"}]})
    assert policy.evaluate("last", {}, "a").rule == "rules[1000]"
    assert policy.evaluate("tool_999", {}, "a").rule == "rules[999]"
