"""The policy engine: decide one `tools/call` from a compiled policy. Pure: no I/O, no clock.

Evaluation order, for a call of `tool` by `agent` with `arguments`:

1. `hide`: a tool matching any hide pattern is `hidden` (refused as if it did not exist).
2. `rules`, in order: the first rule whose `tool`, `agents` and `when` all match decides.
3. `annotation_defaults` (only when the document has it): the tool's MCP annotations put it in
   a class (read_only, additive, destructive); that class's action decides, if it has one.
4. `default`.

Fail closed: a `when` clause that is indeterminate (see `conditions.py`) counts as a match for
`deny` and `approve` rules and as no match for `allow` rules, so a missing or malformed
argument can never slip past a restriction. That includes a value an upstream could read
another way than Airlock (`"true"` for `true`, a list written as a JSON string): see
`conditions.py` and issue 10. Likewise an annotation that is not exactly
`true`/`false` is read the way the MCP specification's defaults read a missing one.

`explain.py` explains a decision with this module's own code (`CompiledRule.applies` and
`counts_as_match`, and `evaluate` for the decision), so an explanation cannot disagree with it.

This module does not count rate limits, park approvals or read files: it reports what the
policy says (`Decision`) and the gateway acts on it. Building a `CompiledPolicy` from JSON,
with validation, lives in `document.py`; each rule's `Decision` is built once there, so a
call only walks globs and conditions.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

from app.policy.conditions import All, Truth

Action: TypeAlias = Literal["allow", "deny", "approve"]
ToolClass: TypeAlias = Literal["read_only", "destructive", "additive"]

_TOOL_CACHE_LIMIT: Final = 10_000
READ_ONLY_HINT: Final = "readOnlyHint"
DESTRUCTIVE_HINT: Final = "destructiveHint"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `max` calls per `window` seconds, per agent identity."""

    max: int
    window: float


Routing: TypeAlias = Mapping[str, Mapping[str, Any]]
"""An approve rule's per-channel routing, by channel name (`{"slack": {"channel": "#ops", "users": [...]}}`).

The engine does not read it: each reviewer channel interprets its own entry. Treat it as read-only."""


GrantScope: TypeAlias = Literal["identical", "tool"]
"""What a scoped grant covers: calls with the same arguments, or any call of the same tool."""


@dataclass(frozen=True, slots=True)
class GrantPolicy:
    """An approve rule's `grants`: the longest grant a reviewer may give, and the scopes offered."""

    max_minutes: int
    scopes: tuple[GrantScope, ...] = ("identical",)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy says about one call.

    Attributes:
        action: `hidden` means refuse the call as if the tool did not exist.
        rule: where the decision came from: `hide[0]`, `rules[3]`, `default`,
            `annotation_defaults.destructive`.
        rule_id: the matching rule's `id`, when it has one.
        reason: the policy's reason text, if any.
        rate_limit: the limit the gateway must enforce before acting, if any.
        rate_limit_key: the stable counter key when `rate_limit` is set: the rule id, else
            `rules[i]`.
        timeout, hold, reviewers: approve only; None means the gateway's defaults
            (for `reviewers`: any reviewer may decide).
        approvals, reviewer_groups: approve only; how many distinct reviewers must approve (1:
            one decision decides), and the groups whose members may decide besides `reviewers`
            (None: no group is named).
        routing: approve only; each reviewer channel's routing from the rule (its `slack`
            object), as written; empty when the rule has none.
        escalate_after, escalate_to: approve only; after `escalate_after` seconds without a
            decision, the approval is escalated to the target named `escalate_to` (airlock.toml
            `[escalation.<name>]`, see `app/approvals/escalation.py`); None: never.
        grants: approve only; the scoped grants a reviewer may give with an approval
            (`app/approvals/grants.py`); None: none offered.
    """

    action: Literal["allow", "deny", "approve", "hidden"]
    rule: str
    rule_id: str | None
    reason: str | None
    rate_limit: RateLimit | None = None
    rate_limit_key: str | None = None
    timeout: float | None = None
    hold: float | None = None
    reviewers: tuple[str, ...] | None = None
    approvals: int = 1
    reviewer_groups: tuple[str, ...] | None = None
    routing: Routing = field(default_factory=dict, hash=False)
    escalate_after: float | None = None
    escalate_to: str | None = None
    grants: GrantPolicy | None = None


class GlobSet:
    """Name globs with `fnmatch.fnmatchcase` semantics, translated to regexes once."""

    __slots__ = ("_any", "_matchers", "patterns")

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        self._matchers = tuple(re.compile(fnmatch.translate(p)).match for p in self.patterns)
        joined = "|".join(fnmatch.translate(p) for p in self.patterns)
        self._any = re.compile(joined).match if self.patterns else None

    def matches(self, name: str) -> bool:
        """True when any pattern matches the whole of `name`."""
        return self._any is not None and self._any(name) is not None

    def first_match(self, name: str) -> int | None:
        """The index of the first pattern matching `name`, or None."""
        for index, match in enumerate(self._matchers):
            if match(name) is not None:
                return index
        return None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule, ready to match: globs and conditions compiled, its decision prebuilt."""

    tools: GlobSet
    agents: GlobSet | None
    when: All | None
    decision: Decision

    def applies(self, tool: str, arguments: Mapping[str, Any], agent: str) -> bool:
        """True when this rule decides the call. Indeterminate `when` fails closed."""
        return self.tools.matches(tool) and self.applies_to(arguments, agent)

    def applies_to(self, arguments: Mapping[str, Any], agent: str) -> bool:
        """The rest of `applies` for a call whose tool this rule's patterns already match."""
        if self.agents is not None and not self.agents.matches(agent):
            return False
        if self.when is None:
            return True
        return self.counts_as_match(self.when.evaluate(arguments))

    def counts_as_match(self, holds: Truth) -> bool:
        """Whether a `when` result makes this rule match: indeterminate fails closed.

        Indeterminate (None) matches `deny` and `approve` rules and not `allow` rules.
        `explain.py` reads the same answer, so the two never disagree.
        """
        if holds is None:
            return self.decision.action != "allow"
        return holds


def classify_tool(annotations: Mapping[str, Any] | None) -> ToolClass:
    """Put a tool in an annotation class from its MCP annotations (wire names).

    Only a literal `true` readOnlyHint makes a tool read_only and only a literal `false`
    destructiveHint makes it additive; anything else, including no annotations, is
    destructive, as the MCP specification's defaults say.
    """
    if annotations is None:
        return "destructive"
    if annotations.get(READ_ONLY_HINT) is True:
        return "read_only"
    if annotations.get(DESTRUCTIVE_HINT) is False:
        return "additive"
    return "destructive"


class CompiledPolicy:
    """A validated policy, ready to decide calls. Immutable once built; share it freely.

    Attributes:
        version: `sha256:` + the first 16 hex digits of the SHA-256 of the canonical JSON
            of the document; identifies the policy in the audit log.
        source: the file the policy came from, or `<policy>`.
        document: the policy document as loaded (do not mutate).
        uses_annotations: True when the document has `annotation_defaults`.
    """

    __slots__ = (
        "_by_class",
        "_by_tool",
        "_default",
        "_hidden",
        "_hide",
        "_rules",
        "document",
        "source",
        "uses_annotations",
        "version",
    )

    def __init__(
        self,
        *,
        version: str,
        source: str,
        document: dict[str, Any],
        default: Action,
        hide: Sequence[str],
        rules: Sequence[CompiledRule],
        annotation_defaults: Mapping[ToolClass, Action] | None,
    ) -> None:
        self.version = version
        self.source = source
        self.document = document
        self.uses_annotations = annotation_defaults is not None
        self._hide = GlobSet(hide)
        self._hidden = tuple(
            Decision(action="hidden", rule=f"hide[{index}]", rule_id=None, reason=None)
            for index in range(len(self._hide.patterns))
        )
        self._rules = tuple(rules)
        self._default = Decision(action=default, rule="default", rule_id=None, reason=None)
        self._by_class = _class_decisions(annotation_defaults or {})
        # Whether a rule's (or hide's) patterns match depends on the tool name alone, so each
        # tool name's hide verdict and candidate rules are worked out once and cached: a call
        # then checks only the rules that name its tool, in order (about a microsecond with
        # 1,000 rules instead of a quarter of a millisecond). Tool names are few (an upstream's
        # tools); the cache is cleared if it ever grows past _TOOL_CACHE_LIMIT.
        self._by_tool: dict[str, tuple[Decision | None, tuple[CompiledRule, ...]]] = {}

    def __repr__(self) -> str:
        return f"<CompiledPolicy {self.version} from {self.source}>"

    @property
    def rules(self) -> tuple[CompiledRule, ...]:
        """The rules in document order (`rules[i]` is `rules[i]` of the document)."""
        return self._rules

    def is_hidden(self, tool: str) -> bool:
        """True when `tool` must vanish from `tools/list` and be refused as unknown."""
        return self._hide.matches(tool)

    def evaluate(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        agent: str,
        annotations: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Decide a call.

        Args:
            tool: the tool name from `tools/call`.
            arguments: the call's `arguments` object (`{}` when the call has none).
            agent: the caller's identity, from its token.
            annotations: the upstream tool's MCP annotations, or None when unknown. Only
                consulted when `needs_annotations()` is true.

        Returns:
            The decision; never raises for any JSON-shaped input.
        """
        decision = self._decide_by_rules(tool, arguments, agent)
        if decision is not None:
            return decision
        if self.uses_annotations:
            return self._by_class.get(classify_tool(annotations), self._default)
        return self._default

    def may_hold(self, tool: str) -> bool:
        """Whether some call to `tool`, by some agent with some arguments, could be held for approval.

        An over-approximation (conditions and agents are not evaluated): a tool it names may still
        never be held, but a tool it does not name never is.
        """
        hidden, rules = self._for_tool(tool)
        if hidden is not None:
            return False
        if any(rule.decision.action == "approve" for rule in rules):
            return True
        fallbacks = [self._default, *(self._by_class.values() if self.uses_annotations else ())]
        return any(decision.action == "approve" for decision in fallbacks)

    def needs_annotations(self, tool: str, arguments: Mapping[str, Any], agent: str) -> bool:
        """True when evaluate() would consult annotations.

        That is: the policy uses annotation_defaults, the tool is not hidden and no rule
        matches. The gateway calls this first so it fetches annotations only when needed.
        """
        return self.uses_annotations and self._decide_by_rules(tool, arguments, agent) is None

    def _decide_by_rules(self, tool: str, arguments: Mapping[str, Any], agent: str) -> Decision | None:
        hidden, rules = self._for_tool(tool)
        if hidden is not None:
            return hidden
        for rule in rules:
            if rule.applies_to(arguments, agent):
                return rule.decision
        return None

    def _for_tool(self, tool: str) -> tuple[Decision | None, tuple[CompiledRule, ...]]:
        cached = self._by_tool.get(tool)
        if cached is None:
            if len(self._by_tool) >= _TOOL_CACHE_LIMIT:
                self._by_tool.clear()
            hidden_by = self._hide.first_match(tool)
            hidden = None if hidden_by is None else self._hidden[hidden_by]
            cached = (hidden, tuple(rule for rule in self._rules if rule.tools.matches(tool)))
            self._by_tool[tool] = cached
        return cached


def _class_decisions(actions: Mapping[ToolClass, Action]) -> dict[ToolClass, Decision]:
    return {
        tool_class: Decision(action=action, rule=f"annotation_defaults.{tool_class}", rule_id=None, reason=None)
        for tool_class, action in actions.items()
    }
