"""A rule's escalation fields: `escalate_after` with `escalate_to`, and `on_expiry`, validated and compiled.

Provenance: Airlock-defined (issue 18 item 3; docs/policy.md, "Escalation").
"""

from __future__ import annotations

from typing import Any

import pytest

from app.policy.document import compile_policy
from tests.policy.test_document import problems_of, rule


def approve(**fields: Any) -> dict[str, Any]:
    return rule(action="approve", **fields)


def test_an_escalating_rule_compiles_into_its_decision() -> None:
    policy = compile_policy(approve(timeout=1800, escalate_after=600, escalate_to="sre-oncall", on_expiry="expire"))
    decision = policy.rules[0].decision
    assert (decision.escalate_after, decision.escalate_to) == (600.0, "sre-oncall")


def test_a_rule_without_escalation_never_escalates() -> None:
    decision = compile_policy(approve()).rules[0].decision
    assert (decision.escalate_after, decision.escalate_to) == (None, None)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            {"escalate_after": 600},
            'rules[0]: "escalate_after" needs "escalate_to" beside it (when, and to whom, to escalate)',
        ),
        (
            {"escalate_to": "sre"},
            'rules[0]: "escalate_to" needs "escalate_after" beside it (when, and to whom, to escalate)',
        ),
        (
            {"timeout": 600, "escalate_after": 600, "escalate_to": "sre"},
            "rules[0].escalate_after: must be shorter than the rule's timeout (600 s), or it never happens",
        ),
        ({"escalate_after": 0, "escalate_to": "sre"}, "rules[0].escalate_after: must be greater than 0, not 0"),
    ],
)
def test_an_escalation_that_could_never_happen_is_an_error(fields: dict[str, Any], problem: str) -> None:
    assert problems_of(approve(**fields)) == [problem]


def test_approving_on_expiry_is_not_offered() -> None:
    assert problems_of(approve(on_expiry="approve")) == ['rules[0].on_expiry: "approve" is not one of expire']


@pytest.mark.parametrize("field", ["escalate_after", "escalate_to", "on_expiry"])
@pytest.mark.parametrize("action", ["allow", "deny"])
def test_escalation_fields_belong_to_approve_rules_only(field: str, action: str) -> None:
    value = {"escalate_after": 60, "escalate_to": "sre", "on_expiry": "expire"}[field]
    problems = problems_of(rule(action=action, **{field: value}))
    assert (
        f'rules[0].{field}: "{field}" is only allowed on approve rules (this rule\'s action is "{action}")' in problems
    )
