"""The one policy seam of the gateway: judge each `tools/call`, and filter `tools/list` answers.

Both protocol eras call this module, so a call is judged the same whichever era carried it. A
verdict says what to do (forward, refuse with a reason the model can act on, or park for a human)
and what to write in the audit log. Rate limits are counted here, after the policy matched a
rule that carries one, so a refused call never consumes quota.

Order of judgement: a hidden tool is refused as unknown first (nothing else about it may leak);
then, for an upstream with `strict_arguments` (the default), the arguments are checked against
the tool's published `inputSchema` (`app/policy/arguments.py`, issue 10) and a non-conforming call
is refused (audit decision `invalid`); then the policy decides.

When no `tools/list` answer has been seen yet (an agent that calls without listing), the catalog
is fetched once through the caller's era (`fetch_catalog`), so the first call is checked like any
other. If that fails, or the upstream publishes no schema for the tool (including a tool the
catalog lacks), the call is judged by the policy alone, whose conditions fail closed on values an
upstream could read another way. A failed fetch is retried at most every `CATALOG_RETRY_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from app.jsonrpc import ToolCall
from app.policy.arguments import ArgumentProblem, SchemaCache
from app.policy.engine import CompiledPolicy, Decision
from app.policy.ratelimit import RateLimiter
from app.policy.reloader import PolicyReloader
from app.policy.requests import RequestRules
from app.types import JSONObject
from app.upstream import Upstream

logger = logging.getLogger("airlock.gateway")

AnnotationFetch = Callable[[], Awaitable[None]]
"""Asks the upstream for its tool list (era-specific: it needs the caller's envelope or session)."""

CATALOG_RETRY_SECONDS: Final = 30.0
"""After a failed catalog fetch, calls are judged without schemas for this long before the next try."""
REQUEST_RULES_CACHE: Final = 64
"""Compiled `requests` rules kept, one per policy version."""
SCHEMA_RULE: Final = "inputSchema"
"""The `rule` a schema refusal is recorded under."""


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Literal["forward", "refuse", "park"]
    decision: Decision
    policy: CompiledPolicy
    audit_decision: str
    """allow | deny | hidden | rate_limited | approve"""
    text: str | None = None
    """For a refusal: what the model reads."""


class Interceptor:
    def __init__(self, policies: PolicyReloader, limiter: RateLimiter) -> None:
        self._policies = policies
        self._limiter = limiter
        self._schemas: dict[str, SchemaCache] = {}
        self._catalog_locks: dict[str, asyncio.Lock] = {}
        self._catalog_retry_at: dict[str, float] = {}
        self._request_rules: dict[str, RequestRules] = {}

    async def judge(
        self, upstream: Upstream, agent: str, call: ToolCall, fetch_annotations: AnnotationFetch
    ) -> Verdict:
        policy = self._policies.current(upstream.name)
        if upstream.settings.strict_arguments and not policy.is_hidden(call.name):
            problem = await self._argument_problem(upstream, call, fetch_annotations)
            if problem is not None:
                return _invalid(call.name, problem, policy)
        annotations = await self._annotations(upstream, policy, agent, call, fetch_annotations)
        decision = policy.evaluate(call.name, call.arguments, agent, annotations)
        if decision.action == "hidden":
            return Verdict("refuse", decision, policy, "hidden", f"Unknown tool: {call.name}")
        if decision.action == "deny":
            return Verdict("refuse", decision, policy, "deny", _denial_text(call.name, decision))
        if decision.rate_limit is not None:
            check = await self._limiter.take(
                upstream=upstream.name,
                key=decision.rate_limit_key or decision.rule,
                agent=agent,
                limit=decision.rate_limit,
                now=time.time(),
            )
            if not check.allowed:
                limit = decision.rate_limit
                text = (
                    f"Rate limit reached for {call.name}: at most {limit.max} calls per {limit.window:g} s "
                    f"for agent {agent}. This call did not run; it can be retried in {check.retry_after:.0f} s."
                )
                return Verdict("refuse", decision, policy, "rate_limited", text)
        if decision.action == "approve":
            return Verdict("park", decision, policy, "approve")
        return Verdict("forward", decision, policy, "allow")

    def judge_request(
        self, upstream: Upstream, agent: str, method: str, target: str | None
    ) -> tuple[Decision, CompiledPolicy]:
        """The upstream policy's `requests` verdict on a request that is not a `tools/call` (`app/policy/requests.py`)."""
        policy = self._policies.current(upstream.name)
        rules = self._request_rules.get(policy.version)
        if rules is None:
            if len(self._request_rules) > REQUEST_RULES_CACHE:
                self._request_rules.clear()  # old policy versions: rebuilt on demand
            rules = self._request_rules[policy.version] = RequestRules.from_document(policy.document)
        return rules.decide(method, target, agent), policy

    async def _argument_problem(
        self, upstream: Upstream, call: ToolCall, fetch: AnnotationFetch
    ) -> ArgumentProblem | None:
        """What is wrong with the call's arguments by the tool's published schema (None: nothing, or no schema)."""
        if not upstream.catalog.listed:
            await self._fetch_catalog_once(upstream, fetch)
        schema = upstream.catalog.input_schemas.get(call.name)
        if schema is None:
            return None
        checker = self._schemas.setdefault(upstream.name, SchemaCache()).for_tool(call.name, schema)
        return None if checker is None else checker.check(call.arguments)

    async def _fetch_catalog_once(self, upstream: Upstream, fetch: AnnotationFetch) -> None:
        """Fetch the catalog unless one is known; concurrent first calls share one fetch."""
        lock = self._catalog_locks.setdefault(upstream.name, asyncio.Lock())
        async with lock:
            if upstream.catalog.listed or time.monotonic() < self._catalog_retry_at.get(upstream.name, 0.0):
                return
            try:
                await fetch()
            except Exception:
                # Fail closed but usable: without schemas the policy's conditions still fail closed.
                logger.warning("could not fetch the tool list of %s to check arguments", upstream.name, exc_info=True)
            if not upstream.catalog.listed:
                self._catalog_retry_at[upstream.name] = time.monotonic() + CATALOG_RETRY_SECONDS

    async def _annotations(
        self, upstream: Upstream, policy: CompiledPolicy, agent: str, call: ToolCall, fetch: AnnotationFetch
    ) -> Mapping[str, Any] | None:
        if not policy.uses_annotations:
            return None
        known = upstream.catalog.annotations
        if call.name in known:
            return known[call.name]  # evaluate() reads them only if no rule matches
        if not policy.needs_annotations(call.name, call.arguments, agent):
            return None
        try:
            await fetch()
        except Exception:
            # Fail closed: unknown annotations read as the MCP defaults (destructive).
            logger.warning("could not fetch the tool list of %s to read annotations", upstream.name, exc_info=True)
        return known.get(call.name)

    def tools_list_filter(self, upstream: Upstream) -> Callable[[JSONObject], JSONObject]:
        """A relay transform for a `tools/list` answer: hidden tools removed, the rest untouched."""

        def transform(message: JSONObject) -> JSONObject:
            if "result" not in message:
                return message
            return {**message, "result": self.filter_tools(upstream, message["result"])}

        return transform

    def may_hold_for(self, upstream: Upstream) -> Callable[[str], bool]:
        """Whether the current policy could hold a call to a tool (for `taskSupport`, `app/tasks/`)."""
        policy = self._policies.current(upstream.name)
        return policy.may_hold

    def filter_tools(self, upstream: Upstream, result: Any) -> Any:
        """Remove hidden tools from a `tools/list` result, and learn every tool's annotations."""
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            return result
        upstream.catalog.learn(result["tools"])
        policy = self._policies.current(upstream.name)
        visible = [
            tool
            for tool in result["tools"]
            if not (isinstance(tool, dict) and isinstance(tool.get("name"), str) and policy.is_hidden(tool["name"]))
        ]
        return {**result, "tools": visible}


def _invalid(tool: str, problem: ArgumentProblem, policy: CompiledPolicy) -> Verdict:
    text = (
        f"Airlock refused this call to {tool}: {problem.text}, as the tool's input schema requires "
        "(values are not converted). It did not run; correct the arguments and call again."
    )
    decision = Decision(action="deny", rule=SCHEMA_RULE, rule_id=None, reason=problem.text)
    return Verdict("refuse", decision, policy, "invalid", text)


def _denial_text(tool: str, decision: Decision) -> str:
    if decision.reason:
        why = decision.reason
    elif decision.rule == "default":
        why = "no policy rule allows it (the policy's default is deny)"
    else:
        why = f"the policy denies it ({decision.rule})"
    return (
        f"Airlock policy denied this call to {tool}: {why}. It did not run; "
        "do not retry it unchanged. Ask a human if it is needed."
    )
