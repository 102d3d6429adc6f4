"""The hold budget: the agent's setting, else the rule's, else the default.

Provenance: Airlock-defined (the approvals issue: per-agent `hold_seconds` for clients known to
wait longer; a rule's `hold`; `[approvals] hold_seconds` otherwise). Pure, so a table.
"""

from __future__ import annotations

import pytest

from app.approvals.budget import hold_seconds
from app.config import ApprovalSettings
from app.policy.engine import Decision

SETTINGS = ApprovalSettings(hold_seconds=50.0, agent_hold_seconds={"patient-bot": 600.0})


def approve(hold: float | None) -> Decision:
    return Decision(action="approve", rule="rules[0]", rule_id=None, reason=None, hold=hold)


@pytest.mark.parametrize(
    ("agent", "rule_hold", "expected"),
    [
        ("patient-bot", 20.0, 600.0),
        ("patient-bot", None, 600.0),
        ("agent-1", 20.0, 20.0),
        ("agent-1", None, 50.0),
    ],
)
def test_the_agent_setting_wins_over_the_rule_which_wins_over_the_default(
    agent: str, rule_hold: float | None, expected: float
) -> None:
    assert hold_seconds(SETTINGS, agent, approve(rule_hold)) == expected
