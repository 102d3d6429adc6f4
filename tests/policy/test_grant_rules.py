"""A rule's `grants` field: which scoped grants a reviewer may give with an approval, validated and compiled.

Provenance: Airlock-defined (issue 18 item 4; docs/policy.md, "Scoped grants").
"""

from __future__ import annotations

from typing import Any

import pytest

from app.policy.document import compile_policy
from app.policy.engine import GrantPolicy
from tests.policy.test_document import problems_of, rule


def approve(**fields: Any) -> dict[str, Any]:
    return rule(action="approve", **fields)


def test_a_granting_rule_compiles_into_its_decision() -> None:
    policy = compile_policy(approve(grants={"max_minutes": 60, "scope": ["identical", "tool"]}))
    assert policy.rules[0].decision.grants == GrantPolicy(60, ("identical", "tool"))


def test_grants_offer_identical_calls_only_unless_the_rule_lists_tool() -> None:
    assert compile_policy(approve(grants={"max_minutes": 15})).rules[0].decision.grants == GrantPolicy(15)


def test_a_rule_without_grants_offers_none() -> None:
    assert compile_policy(approve()).rules[0].decision.grants is None


def test_a_quorum_rule_cannot_offer_grants() -> None:
    assert problems_of(approve(approvals=2, grants={"max_minutes": 10})) == [
        "rules[0].grants: a rule that needs several approvals cannot offer grants (one reviewer's yes)"
    ]


@pytest.mark.parametrize(
    "grants",
    [
        {},
        {"max_minutes": 0},
        {"max_minutes": 1441},
        {"max_minutes": 10, "scope": ["agent"]},
        {"max_minutes": 10, "scope": []},
    ],
    ids=["no-minutes", "zero", "over-a-day", "unknown-scope", "empty-scope"],
)
def test_a_malformed_grants_field_is_an_error(grants: dict[str, Any]) -> None:
    assert len(problems_of(approve(grants=grants))) == 1


@pytest.mark.parametrize("action", ["allow", "deny"])
def test_grants_belong_to_approve_rules_only(action: str) -> None:
    assert len(problems_of(rule(action=action, grants={"max_minutes": 10}))) == 1
