"""The policy's `requests` rules: judge requests that read or act without being a `tools/call`.

`resources/read`, `resources/subscribe`, `prompts/get`, `completion/complete` and
`logging/setLevel` can read or do as much as a tool (issue 14, item 4). A policy's optional
`requests` array decides them: the first rule whose `method`, `match` (globs on the URI, prompt
name or level the request names) and `agents` all match decides, allow or deny. When none
matches, the request is allowed, as before these rules existed, so existing policies keep working.

Deliberately narrower than tool rules (future work, issue 14): no `approve` (holding a read for a
human needs an approval record for something that is not a tool call), no `when` conditions, no
rate limits, and `hide` and `default` still apply to tools only.

Pure module: a validated policy document and a request in, a `Decision` out. The document is
validated against `policy.schema.json` by `document.py` before it gets here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from app.policy.engine import Decision, GlobSet
from app.types import JSONObject

JUDGED_METHODS: Final = frozenset(
    {"resources/read", "resources/subscribe", "prompts/get", "completion/complete", "logging/setLevel"}
)
NO_RULE: Final = "requests.default"
"""The `rule` of a request no `requests` rule matched (allowed)."""


@dataclass(frozen=True, slots=True)
class RequestRule:
    methods: frozenset[str]
    targets: GlobSet | None
    agents: GlobSet | None
    decision: Decision

    def applies(self, method: str, target: str | None, agent: str) -> bool:
        if method not in self.methods:
            return False
        if self.targets is not None and (target is None or not self.targets.matches(target)):
            return False
        return self.agents is None or self.agents.matches(agent)


class RequestRules:
    """A policy document's `requests` rules, compiled once."""

    def __init__(self, rules: Sequence[RequestRule]) -> None:
        self._rules = tuple(rules)

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> RequestRules:
        return cls([_compile(index, rule) for index, rule in enumerate(document.get("requests", []))])

    def decide(self, method: str, target: str | None, agent: str) -> Decision:
        for rule in self._rules:
            if rule.applies(method, target, agent):
                return rule.decision
        return Decision(action="allow", rule=NO_RULE, rule_id=None, reason=None)


def target_of(method: str, params: JSONObject) -> str | None:
    """What a judged request names: its URI, prompt name, reference or level (None when it names nothing)."""
    if method == "completion/complete":
        ref = params.get("ref")
        value = (
            (ref.get("uri") if ref.get("type") == "ref/resource" else ref.get("name"))
            if isinstance(ref, dict)
            else None
        )
    else:
        value = params.get({"prompts/get": "name", "logging/setLevel": "level"}.get(method, "uri"))
    return value if isinstance(value, str) else None


def _compile(index: int, rule: Mapping[str, Any]) -> RequestRule:
    methods = rule["method"]
    match = rule.get("match")
    return RequestRule(
        methods=frozenset([methods] if isinstance(methods, str) else methods),
        targets=None if match is None else GlobSet([match] if isinstance(match, str) else match),
        agents=GlobSet(rule["agents"]) if "agents" in rule else None,
        decision=Decision(
            action=rule["action"], rule=f"requests[{index}]", rule_id=rule.get("id"), reason=rule.get("reason")
        ),
    )
