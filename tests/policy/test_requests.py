"""The policy's `requests` rules: which requests that are not tool calls a policy allows or denies.

Provenance: Airlock-defined (issue 14, item 4). Table-driven: the module is pure.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import PolicyError
from app.policy.document import compile_policy
from app.policy.requests import NO_RULE, RequestRules, target_of

DOCUMENT: dict[str, Any] = {
    "version": "1",
    "requests": [
        {"id": "etc", "method": "resources/read", "match": ["file:///etc/*", "file:///root/*"], "action": "deny"},
        {"method": "resources/read", "match": "file:///*", "action": "allow"},
        {
            "method": ["prompts/get", "completion/complete"],
            "match": "admin_*",
            "agents": ["intern-*"],
            "action": "deny",
        },
        {"method": "logging/setLevel", "action": "deny", "reason": "logs are ours"},
    ],
}
RULES = RequestRules.from_document(compile_policy(DOCUMENT).document)


@pytest.mark.parametrize(
    ("method", "target", "agent", "action", "rule"),
    [
        ("resources/read", "file:///etc/passwd", "bot", "deny", "requests[0]"),
        ("resources/read", "file:///root/.ssh/id", "bot", "deny", "requests[0]"),
        ("resources/read", "file:///srv/a.txt", "bot", "allow", "requests[1]"),
        ("resources/read", "https://example.com/", "bot", "allow", NO_RULE),
        ("resources/subscribe", "file:///etc/passwd", "bot", "allow", NO_RULE),  # rules name their methods
        ("prompts/get", "admin_reset", "intern-7", "deny", "requests[2]"),
        ("prompts/get", "admin_reset", "senior", "allow", NO_RULE),
        ("completion/complete", "admin_reset", "intern-7", "deny", "requests[2]"),
        ("prompts/get", None, "intern-7", "allow", NO_RULE),  # a request naming nothing matches no pattern
        ("logging/setLevel", None, "bot", "deny", "requests[3]"),  # no match: every target
    ],
)
def test_the_first_matching_rule_decides_and_none_means_allowed(
    method: str, target: str | None, agent: str, action: str, rule: str
) -> None:
    decision = RULES.decide(method, target, agent)
    assert (decision.action, decision.rule) == (action, rule)


def test_a_policy_without_requests_rules_allows_every_request() -> None:
    rules = RequestRules.from_document({"version": "1", "default": "deny"})
    assert rules.decide("resources/read", "file:///etc/passwd", "bot").action == "allow"


@pytest.mark.parametrize(
    ("method", "params", "target"),
    [
        ("resources/read", {"uri": "file:///a"}, "file:///a"),
        ("resources/subscribe", {"uri": "file:///a"}, "file:///a"),
        ("prompts/get", {"name": "p"}, "p"),
        ("completion/complete", {"ref": {"type": "ref/prompt", "name": "p"}}, "p"),
        ("completion/complete", {"ref": {"type": "ref/resource", "uri": "file:///{x}"}}, "file:///{x}"),
        ("logging/setLevel", {"level": "debug"}, "debug"),
        ("resources/read", {"uri": 7}, None),
        ("completion/complete", {"ref": "p"}, None),
    ],
)
def test_what_a_request_names(method: str, params: dict[str, Any], target: str | None) -> None:
    assert target_of(method, params) == target


@pytest.mark.parametrize(
    "rule",
    [
        {"method": "resources/read", "action": "approve"},  # not (yet) for requests
        {"method": "tools/call", "action": "deny"},  # tool calls have their own rules
        {"method": [], "action": "deny"},
        {"method": "prompts/get", "match": "", "action": "deny"},
        {"method": "prompts/get", "action": "deny", "when": {"x": {"eq": 1}}},
    ],
)
def test_a_requests_rule_the_schema_does_not_allow_is_refused(rule: dict[str, Any]) -> None:
    with pytest.raises(PolicyError) as refused:
        compile_policy({"version": "1", "requests": [rule]})
    assert all(problem.location.startswith("requests[0]") for problem in refused.value.problems)
