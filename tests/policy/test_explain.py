"""Explaining a decision: the matching rule, why earlier rules did not match, hide, limits, annotations, schema.

Airlock-defined. The decision itself is the engine's (`CompiledPolicy.evaluate`); these tests check that the
explanation never contradicts it, and that the documented examples explain as documented.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from app.policy.document import compile_policy
from app.policy.engine import CompiledPolicy
from app.policy.explain import Explanation, ToolFacts, explain, explanation_json, explanation_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE: dict[str, Any] = {
    "version": "1",
    "default": "deny",
    "hide": ["em_wipe_all"],
    "rules": [
        {"tool": "em_publish_task", "agents": ["intern-bot"], "action": "deny", "reason": "interns cannot publish"},
        {"tool": "em_publish_task", "when": {"bounty_usd": {"gt": 100}}, "action": "approve", "reason": "large bounty"},
        {"tool": "em_publish_task", "action": "allow", "rate_limit": {"max": 10, "window": 60}},
        {"tool": "em_get_*", "action": "allow"},
        {"tool": "em_cancel_task", "action": "approve", "reason": "cancelling is irreversible", "timeout": 1800},
    ],
}
PUBLISH_SCHEMA = {"type": "object", "properties": {"bounty_usd": {"type": "number"}, "title": {"type": "string"}}}


def run(
    arguments: dict[str, Any],
    tool: str = "em_publish_task",
    agent: str = "bot",
    *,
    document: dict[str, Any] = EXAMPLE,
    catalog: dict[str, ToolFacts] | None = None,
    strict: bool = True,
) -> Explanation:
    return explain(compile_policy(document), tool, arguments, agent, catalog=catalog, strict_arguments=strict)


def test_the_matching_rule_and_why_each_earlier_rule_did_not_match_are_given() -> None:
    result = run({"bounty_usd": 50})
    assert (result.outcome, result.decision.rule) == ("allow", "rules[2]")
    assert [(c.location, c.matched) for c in result.rules] == [
        ("rules[0]", False),
        ("rules[1]", False),
        ("rules[2]", True),
    ]
    assert result.rules[0].why == 'agent "bot" matches none of rules[0].agents ["intern-bot"]'
    assert result.rules[1].why == "rules[1].when.bounty_usd is false"
    assert result.rules[1].conditions[0].result is False


def test_a_tool_that_matches_no_pattern_is_said_so() -> None:
    result = run({}, tool="em_rate_worker")
    assert result.decision.rule == "default" and not any(c.matched for c in result.rules)
    assert len(result.rules) == len(EXAMPLE["rules"])
    assert result.rules[3].why == 'tool "em_rate_worker" matches none of rules[3].tool ["em_get_*"]'


@pytest.mark.parametrize(
    ("action", "arguments", "matched", "phrase"),
    [
        ("approve", {}, True, "counts as a match for an approve rule"),
        ("deny", {"bounty_usd": "a lot"}, True, "counts as a match for a deny rule"),
        ("allow", {}, False, "counts as no match for an allow rule (fail closed)"),
    ],
)
def test_an_indeterminate_condition_is_named_with_what_it_counts_as(
    action: str, arguments: dict[str, Any], matched: bool, phrase: str
) -> None:
    document = {"version": "1", "rules": [{"tool": "t", "when": {"bounty_usd": {"gt": 100}}, "action": action}]}
    [check] = run(arguments, "t", document=document).rules
    assert check.matched is matched and check.conditions[0].result is None
    assert "rules[0].when.bounty_usd is indeterminate" in check.why and phrase in check.why


def test_a_hidden_tool_consults_no_rule_and_is_not_schema_checked() -> None:
    result = run({}, tool="em_wipe_all", catalog={"em_wipe_all": ToolFacts(None, PUBLISH_SCHEMA)})
    assert (result.outcome, result.decision.rule, result.rules) == ("hidden", "hide[0]", ())
    assert result.arguments_check.status == "not_checked"
    assert "hide[0] hides the tool" in explanation_text(result)


def test_the_rate_limit_of_the_matching_rule_is_reported() -> None:
    body = explanation_json(run({"bounty_usd": 5}))
    assert body["rate_limit"] == {"max": 10, "window": 60.0, "key": "rules[2]"}
    assert "at most 10 calls per 60 s per agent" in explanation_text(run({"bounty_usd": 5}))


ANNOTATED = {"version": "1", "default": "deny", "annotation_defaults": {"read_only": "allow", "destructive": "approve"}}


def test_annotation_defaults_decide_from_the_catalogs_annotations() -> None:
    result = run({}, "em_get_task", document=ANNOTATED, catalog={"em_get_task": ToolFacts({"readOnlyHint": True})})
    assert (result.decision.rule, result.annotations.applied, result.annotations.tool_class) == (
        "annotation_defaults.read_only",
        True,
        "read_only",
    )


def test_unknown_annotations_are_said_to_read_as_the_mcp_defaults() -> None:
    result = run({}, "em_get_task", document=ANNOTATED, catalog=None)
    assert result.decision.rule == "annotation_defaults.destructive" and not result.annotations.known
    assert "MCP specification's defaults" in result.annotations.note
    assert "not fetched" in result.annotations.note


def test_additive_tools_with_no_class_action_fall_to_default_and_say_so() -> None:
    result = run({}, "t", document=ANNOTATED, catalog={"t": ToolFacts({"destructiveHint": False})})
    assert result.decision.rule == "default" and "no action for additive" in result.annotations.note


def test_arguments_the_schema_refuses_are_refused_before_the_policy() -> None:
    result = run({"bounty_usd": "150"}, catalog={"em_publish_task": ToolFacts(None, PUBLISH_SCHEMA)})
    assert result.outcome == "invalid" and result.decision.action == "approve"
    assert result.arguments_check.problem is not None and result.arguments_check.problem.path == "bounty_usd"
    assert explanation_text(result).splitlines()[0] == "em_publish_task by bot: INVALID"


@pytest.mark.parametrize(
    ("catalog", "strict", "status"),
    [
        ({"em_publish_task": ToolFacts(None, PUBLISH_SCHEMA)}, True, "conforms"),
        ({"em_publish_task": ToolFacts(None, PUBLISH_SCHEMA)}, False, "not_checked"),
        ({"em_publish_task": ToolFacts(None, None)}, True, "not_checked"),
        (None, True, "not_checked"),
    ],
)
def test_arguments_are_checked_only_when_strict_and_a_schema_is_known(
    catalog: dict[str, ToolFacts] | None, strict: bool, status: str
) -> None:
    result = run({"bounty_usd": 5}, catalog=catalog, strict=strict)
    assert result.arguments_check.status == status and result.outcome == "allow"


def test_the_json_form_names_every_part() -> None:
    body = explanation_json(run({"bounty_usd": 500}), upstream="market")
    assert json.loads(json.dumps(body)) == body
    assert body["outcome"] == "approve" and body["decision"]["reason"] == "large bounty"
    assert body["rules"][1]["conditions"] == [
        {"path": "bounty_usd", "location": "rules[1].when.bounty_usd", "result": "true"}
    ]
    assert set(body) >= {"upstream", "hidden_by", "rate_limit", "annotations", "arguments_check", "policy"}


# --- explain never disagrees with evaluate -----------------------------------------------------

GENERATED_POLICY = {
    "version": "1",
    "default": "deny",
    "hide": ["em_wipe_*"],
    "annotation_defaults": {"read_only": "allow", "destructive": "approve"},
    "rules": [
        {"tool": "em_publish_task", "agents": ["intern-*"], "action": "deny"},
        {
            "tool": "em_publish_task",
            "when": {"bounty_usd": {"gt": 100}, "title": {"regex": "[a-z ]+"}},
            "action": "approve",
        },
        {"tool": ["em_publish_task", "em_list_*"], "when": {"bounty_usd": {"lte": 10}}, "action": "allow"},
        {"tool": "em_*", "agents": ["bot"], "when": {"tags": {"contains": "safe"}}, "action": "allow"},
        {"tool": "em_cancel_task", "when": {"/reason": {"exists": False}}, "action": "deny"},
        {"tool": "em_get_*", "action": "allow", "rate_limit": {"max": 3, "window": 60}},
    ],
}
VALUES: list[Any] = [None, 0, 5, 150, "150", "a lot", "[1]", "abc", True, [1], {"usd": 1}, ["safe"], "safe"]


def generated_calls(count: int) -> list[tuple[str, dict[str, Any], str, dict[str, Any] | None]]:
    rng = random.Random(13)
    tools = ["em_publish_task", "em_list_tasks", "em_cancel_task", "em_get_task", "em_wipe_all", "other"]
    agents = ["bot", "intern-bot", "carol"]
    annotations = [None, {"readOnlyHint": True}, {"destructiveHint": False}, {"readOnlyHint": "true"}]
    calls = []
    for _ in range(count):
        arguments = {key: rng.choice(VALUES) for key in ("bounty_usd", "title", "tags", "reason") if rng.random() < 0.6}
        calls.append((rng.choice(tools), arguments, rng.choice(agents), rng.choice(annotations)))
    return calls


def test_explain_decides_every_generated_call_as_evaluate_does() -> None:
    """2,000 generated calls: the same decision, and the trace agrees with it rule by rule."""
    compiled: CompiledPolicy = compile_policy(GENERATED_POLICY)
    for tool, arguments, agent, tool_annotations in generated_calls(2000):
        expected = compiled.evaluate(tool, arguments, agent, tool_annotations)
        result = explain(compiled, tool, arguments, agent, catalog={tool: ToolFacts(tool_annotations)})
        assert result.decision == expected, (tool, arguments, agent)
        matched = [check.location for check in result.rules if check.matched]
        if expected.rule.startswith("rules["):
            assert matched == [expected.rule] and result.rules[-1].matched
        else:
            assert matched == []
            assert len(result.rules) == (0 if expected.action == "hidden" else len(GENERATED_POLICY["rules"]))
        for check in result.rules:
            rule = compiled.rules[check.index]
            if check.conditions:
                assert rule.counts_as_match(rule.when.evaluate(arguments) if rule.when else True) is check.matched


# --- the documented examples explain as documented -----------------------------------------------


def json_block_after(text: str, marker: str) -> Any:
    start = text.index(marker)
    block = re.search(r"```json\n(.*?)```", text[start:], re.S)
    assert block is not None
    return json.loads(block.group(1))


DOCS = (ROOT / "docs" / "policy.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS_EXAMPLE = json_block_after(DOCS, "A fuller one:")


def test_the_readme_and_the_reference_show_the_same_example_policy() -> None:
    assert json_block_after(README, "Rules are evaluated in order") == DOCS_EXAMPLE == EXAMPLE


@pytest.mark.parametrize(
    ("tool", "arguments", "agent", "outcome", "rule"),
    [
        ("em_wipe_all", {}, "bot", "hidden", "hide[0]"),
        ("em_publish_task", {"bounty_usd": 150}, "intern-bot", "deny", "rules[0]"),
        ("em_publish_task", {"bounty_usd": 150}, "bot", "approve", "rules[1]"),
        ("em_publish_task", {"bounty_usd": "150"}, "bot", "approve", "rules[1]"),
        ("em_publish_task", {"bounty_usd": 50}, "bot", "allow", "rules[2]"),
        ("em_publish_task", {}, "bot", "approve", "rules[1]"),
        ("em_publish_task", {"bounty_usd": "a lot"}, "bot", "approve", "rules[1]"),
        ("em_get_task", {}, "bot", "allow", "rules[3]"),
        ("em_cancel_task", {}, "bot", "approve", "rules[4]"),
        ("em_rate_worker", {}, "bot", "deny", "default"),
    ],
)
def test_the_reference_examples_table_is_what_explain_answers(
    tool: str, arguments: dict[str, Any], agent: str, outcome: str, rule: str
) -> None:
    result = explain(compile_policy(DOCS_EXAMPLE), tool, arguments, agent, catalog=None)
    assert (result.outcome, result.decision.rule) == (outcome, rule)
    row = next(line for line in DOCS.splitlines() if line.startswith("|") and f"`{rule}`" in line)
    assert outcome in row or (outcome == "hidden" and "hidden" in row)


def explain_examples(section: str) -> list[tuple[list[str], list[str]]]:
    """Each `$ airlock policy explain …` in `section`, with the lines it shows."""
    examples = []
    for block in re.findall(r"```text\n(.*?)```", section, re.S):
        lines = block.splitlines()
        if lines and lines[0].startswith("$ airlock policy explain"):
            examples.append((lines[0], lines[1:]))
    return [(_shell_words(command), output) for command, output in examples]


def _shell_words(command: str) -> list[str]:
    import shlex

    return shlex.split(command[2:])


README_POLICIES = README[README.index("## Policies") : README.index("## Human approval")]
DOCS_TESTING = DOCS[DOCS.index("## Testing a policy") : DOCS.index("## Editing a live policy")]


@pytest.mark.parametrize(("section", "count"), [(README_POLICIES, 2), (DOCS_TESTING, 1)], ids=["README", "docs"])
def test_the_documented_explain_examples_print_what_the_documents_show(section: str, count: int) -> None:
    examples = explain_examples(section)
    assert len(examples) == count
    compiled = compile_policy(EXAMPLE)
    for words, shown in examples:
        agent = words[words.index("--agent") + 1]
        positional = [
            w for i, w in enumerate(words[3:], 3) if not w.startswith("-") and not words[i - 1].startswith("--")
        ]
        tool, arguments = positional[0], json.loads(positional[1]) if len(positional) > 1 else {}
        printed = explanation_text(
            explain(compiled, tool, arguments, agent, catalog=None), upstream="execution-market"
        ).splitlines()
        for line in shown:
            if line.strip() and not line.lstrip().startswith(("policy:", "catalog:", "…")):
                assert line in printed, (words, line, printed)
