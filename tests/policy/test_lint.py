"""Warnings about rules that can never match, and about names the upstream does not have. Airlock-defined."""

from __future__ import annotations

from typing import Any

import pytest

from app.policy.document import compile_policy
from app.policy.lint import Finding, glob_covers, lint, lint_against_catalog
from tests.harness import DEFAULT_POLICY


def rules(*items: dict[str, Any], **fields: Any) -> dict[str, Any]:
    document = {"version": "1", "rules": list(items), **fields}
    compile_policy(document)  # lint reads only valid documents
    return document


def locations(findings: list[Finding]) -> list[str]:
    return [finding.location for finding in findings]


@pytest.mark.parametrize(
    ("wide", "narrow", "covers"),
    [
        ("em_get_task", "em_get_task", True),
        ("*", "em_get_*", True),
        ("em_get_*", "em_get_task", True),
        ("em_get_?ask", "em_get_task", True),
        ("em_*", "em_get_*", False),  # overlapping globs are never claimed
        ("em_get_task", "em_get_*", False),
        ("em_get_*", "em_list_tasks", False),
    ],
)
def test_a_glob_covers_another_only_when_certain(wide: str, narrow: str, covers: bool) -> None:
    assert glob_covers(wide, narrow) is covers


SHADOWED = [
    pytest.param(
        rules({"tool": "*", "action": "deny"}, {"tool": "em_get_task", "action": "allow"}),
        ["rules[1]"],
        "a catch-all",
        id="after a catch-all",
    ),
    pytest.param(
        rules({"tool": "em_get_task", "action": "allow"}, {"tool": "em_get_task", "action": "deny"}),
        ["rules[1]"],
        "rules[0]",
        id="same tool, no when",
    ),
    pytest.param(
        rules({"tool": "em_get_*", "action": "allow"}, {"tool": "em_get_task", "agents": ["bot"], "action": "deny"}),
        ["rules[1]"],
        'by "bot"',
        id="a glob covering a literal, any agent covering some",
    ),
    pytest.param(
        rules(
            {"tool": "em_get_task", "agents": ["bot", "intern-*"], "action": "allow"},
            {"tool": "em_get_task", "agents": ["intern-bot"], "action": "deny"},
        ),
        ["rules[1]"],
        "rules[0]",
        id="agent glob covering a literal agent",
    ),
    pytest.param(
        rules({"tool": "em_get_task", "action": "allow"}, {"tool": ["em_get_task", "em_list_tasks"], "action": "deny"}),
        ["rules[1].tool[0]"],
        "this pattern never matches",
        id="one pattern of a list",
    ),
    pytest.param(
        rules(
            {"tool": "em_get_task", "action": "allow"},
            {"tool": "em_list_tasks", "action": "allow"},
            {"tool": ["em_get_task", "em_list_tasks"], "action": "deny"},
        ),
        ["rules[2]"],
        "rules[1]",
        id="every pattern, by different rules",
    ),
    pytest.param(
        rules(
            {"tool": "em_x", "when": {"n": {"gt": 1}}, "action": "deny"},
            {"tool": "em_x", "when": {"n": {"gt": 1}}, "action": "approve"},
        ),
        ["rules[1]"],
        "with the same when",
        id="the same when, earlier deny",
    ),
    pytest.param(
        rules(
            {"tool": "em_x", "when": {"n": {"gt": 1}}, "action": "allow"},
            {"tool": "em_x", "when": {"n": {"gt": 1}}, "action": "allow"},
        ),
        ["rules[1]"],
        "with the same when",
        id="the same when, both allow",
    ),
    pytest.param(
        rules({"tool": "em_wipe_all", "action": "deny"}, hide=["em_wipe_*"]),
        ["rules[0]"],
        "hidden by hide[0]",
        id="a hidden tool",
    ),
]


@pytest.mark.parametrize(("document", "expected", "mentions"), SHADOWED)
def test_rules_that_can_never_match_are_reported_at_their_location(
    document: dict[str, Any], expected: list[str], mentions: str
) -> None:
    findings = lint(document)
    assert locations(findings) == expected
    assert mentions in findings[0].message


NOT_SHADOWED = [
    pytest.param(
        rules({"tool": "em_x", "when": {"n": {"gt": 1}}, "action": "deny"}, {"tool": "em_x", "action": "allow"}),
        id="an earlier rule with a when",
    ),
    pytest.param(
        rules(
            {"tool": "em_x", "when": {"n": {"gt": 1}}, "action": "allow"},
            {"tool": "em_x", "when": {"n": {"gt": 1}}, "action": "deny"},
        ),
        id="the same when: an allow rule does not match indeterminate calls a deny rule does",
    ),
    pytest.param(
        rules(
            {"tool": "em_x", "when": {"n": {"gt": 1}}, "action": "deny"},
            {"tool": "em_x", "when": {"n": {"gt": 2}}, "action": "deny"},
        ),
        id="a different when (even a weaker one) is not claimed",
    ),
    pytest.param(
        rules({"tool": "em_x", "agents": ["bot"], "action": "deny"}, {"tool": "em_x", "action": "allow"}),
        id="earlier agents narrower",
    ),
    pytest.param(
        rules({"tool": "em_*", "action": "deny"}, {"tool": "em_get_*", "action": "allow"}), id="overlapping globs"
    ),
    pytest.param(
        rules(
            {"tool": "em_get_task", "agents": ["intern-*"], "action": "deny"},
            {"tool": "em_get_task", "agents": ["bot-*"], "action": "allow"},
        ),
        id="different agent globs",
    ),
    pytest.param(rules({"tool": "em_wipe_all", "action": "deny"}, hide=["em_wipe_one"]), id="another tool hidden"),
    pytest.param(DEFAULT_POLICY, id="the test suite's default policy"),
]


@pytest.mark.parametrize("document", NOT_SHADOWED)
def test_rules_that_may_match_are_not_reported(document: dict[str, Any]) -> None:
    assert lint(document) == []


DEMO_SCHEMAS: dict[str, Any] = {
    "em_publish_task": {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "bounty_usd": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        },
    },
    "em_list_tasks": {"type": "object", "properties": {"status": {"anyOf": [{"type": "string"}, {"type": "null"}]}}},
    "em_open": {"type": "object", "properties": {"a": {}}, "additionalProperties": {"type": "string"}},
    "em_bare": None,
}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(rules({"tool": "em_publsh_task", "action": "allow"}), ["rules[0].tool"], id="a typo"),
        pytest.param(
            rules({"tool": ["em_get_*", "em_list_tasks"], "action": "allow"}),
            ["rules[0].tool[0]"],
            id="a glob matching nothing, in a list",
        ),
        pytest.param(rules(hide=["em_wipe_all"]), ["hide[0]"], id="a hide pattern"),
        pytest.param(
            rules({"tool": "em_publish_task", "when": {"bounty": {"gt": 1}}, "action": "approve"}),
            ["rules[0].when.bounty"],
            id="an undeclared argument",
        ),
        pytest.param(
            rules({"tool": "em_publish_task", "when": {"tags.0.nam": "x"}, "action": "approve"}),
            ['rules[0].when["tags.0.nam"]'],
            id="through items",
        ),
        pytest.param(
            rules(
                {
                    "tool": "em_publish_task",
                    "when": {"/tags/0/name": "x", "bounty_usd": {"gt": 1}, "title.x": "y"},
                    "action": "approve",
                }
            ),
            [],
            id="declared paths, and a path into a string (JSON in strings is read) are not reported",
        ),
        pytest.param(
            rules({"tool": "em_list_tasks", "when": {"status.x": "y"}, "action": "deny"}), [], id="anyOf is undecidable"
        ),
        pytest.param(
            rules({"tool": "em_open", "when": {"b": "y"}, "action": "deny"}),
            [],
            id="an additionalProperties schema is undecidable",
        ),
        pytest.param(rules({"tool": "em_bare", "when": {"b": "y"}, "action": "deny"}), [], id="no inputSchema"),
        pytest.param(
            rules({"tool": "em_*", "when": {"nothing": "y"}, "action": "deny"}),
            [],
            id="paths are checked for literal tool names only",
        ),
    ],
)
def test_names_the_upstream_does_not_have_are_reported(document: dict[str, Any], expected: list[str]) -> None:
    assert locations(lint_against_catalog(document, DEMO_SCHEMAS, "market")) == expected


def test_a_finding_reads_as_one_line_with_its_location() -> None:
    [finding] = lint_against_catalog(rules({"tool": "em_x", "action": "allow"}), DEMO_SCHEMAS, "market")
    assert str(finding) == 'rules[0].tool: "em_x" matches no tool of upstream market'


def test_the_reference_shows_what_check_warns_about_its_example() -> None:
    """docs/policy.md, "Rules that can never match": the example policy and the warnings shown."""
    import json
    import re
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "policy.md").read_text(encoding="utf-8")
    section = docs[docs.index("### Rules that can never match") :]
    document = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))  # type: ignore[union-attr]
    shown = re.search(r"```text\n(.*?)```", section, re.S).group(1).splitlines()  # type: ignore[union-attr]
    assert [f"policy.json: warning: {finding}" for finding in lint(document)] == shown[1:]


@pytest.mark.parametrize(
    ("fields", "finding"),
    [
        (
            {"approvals": 3, "reviewers": ["alice", "bob"]},
            "rules[0].approvals: needs 3 approvals but names only 2 reviewers (and no reviewer_groups): "
            "its calls can never be approved, only expire",
        ),
        (
            {"approvals": 2, "reviewers": ["alice", "ALICE"]},
            "rules[0].approvals: needs 2 approvals but names only 1 reviewer (and no reviewer_groups): "
            "its calls can never be approved, only expire",
        ),
        ({"approvals": 2, "reviewers": ["alice", "bob"]}, None),
        ({"approvals": 5, "reviewers": ["alice"], "reviewer_groups": ["sre"]}, None),
        ({"approvals": 5}, None),
    ],
)
def test_a_quorum_larger_than_the_reviewers_it_names_is_reported_as_impossible(
    fields: dict[str, Any], finding: str | None
) -> None:
    document = rules({"tool": "drop_table", "action": "approve", **fields})
    assert [str(f) for f in lint(document)] == ([finding] if finding else [])
