"""Policy decision cost: microseconds per `CompiledPolicy.evaluate` for a seed-sized and a 1,000-rule policy.

The 1,000-rule policy mixes what real policies hold (exact names, globs, per-agent rules and
argument conditions). Three calls are timed: one decided by an early rule, one by the last rule,
and one that matches nothing and falls to the default (it walks every rule: the worst case).
"""

from __future__ import annotations

import timeit
from typing import Any

from app.policy.document import compile_policy

SEED = {"version": "1", "default": "deny", "hide": ["em_cancel_task"]}
EXAMPLE = {
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


def thousand_rules() -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    for i in range(1000):
        kind = i % 4
        if kind == 0:
            rules.append({"tool": f"tool_{i}", "action": "allow"})
        elif kind == 1:
            rules.append({"tool": f"svc{i}_*", "agents": [f"agent-{i}", "team-*"], "action": "deny", "reason": "r"})
        elif kind == 2:
            rules.append(
                {
                    "tool": f"pay_{i}",
                    "when": {"amount": {"gt": i}, "currency": {"in": ["EUR", "USD"]}},
                    "action": "approve",
                }
            )
        else:
            rules.append(
                {"tool": [f"get_{i}", f"list_{i}"], "when": {"/filter/owner": {"regex": f"u{i}-.*"}}, "action": "allow"}
            )
    rules.append({"tool": "last_tool", "action": "allow"})
    return {"version": "1", "default": "deny", "hide": ["secret_*"], "rules": rules}


def time_decision(policy: Any, tool: str, arguments: dict[str, Any], agent: str, *, number: int = 20000) -> float:
    """Microseconds per decision (best of 5 repeats, to leave out scheduler noise)."""
    repeats = timeit.repeat(lambda: policy.evaluate(tool, arguments, agent), number=number, repeat=5)
    return min(repeats) / number * 1e6


def run() -> dict[str, Any]:
    seed, example, big = compile_policy(SEED), compile_policy(EXAMPLE), compile_policy(thousand_rules())
    call = {"task_id": "t-1"}
    return {
        "seed_policy_us": round(time_decision(seed, "em_get_task", call, "agent"), 3),
        "example_policy_us": round(time_decision(example, "em_publish_task", {"bounty_usd": 150}, "agent"), 3),
        "rules_1000_first_match_us": round(time_decision(big, "tool_0", call, "agent"), 3),
        "rules_1000_last_rule_us": round(time_decision(big, "last_tool", call, "agent", number=2000), 3),
        "rules_1000_default_us": round(time_decision(big, "nothing_matches", call, "agent", number=2000), 3),
    }


if __name__ == "__main__":
    print(run())
