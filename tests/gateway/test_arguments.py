"""Issue 10: conditions judge the arguments as the upstream will read them, end to end.

Provenance: known gap (issue 10, class 1), now Airlock-defined behaviour. The upstream is an
official-SDK `MCPServer` with typed parameters (bool, int, list[str], a nested model), which
validates in pydantic's lax mode and parses JSON strings given for lists and models; the agent
is the official `mcp` Client in both eras (`mode="auto"`: 2026-07-28, `mode="legacy"`: handshake).

This module has no `from __future__ import annotations`: the SDK reads the tool's parameter
types from its annotations.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import TextContent
from pydantic import BaseModel

from app.config import UpstreamSettings
from app.gateway.intercept import Interceptor
from app.jsonrpc import ToolCall
from app.policy.ratelimit import RateLimiter
from app.policy.reloader import PolicyReloader
from app.upstream import Upstream, UpstreamUnavailable
from tests.harness import UPSTREAM, AirlockUnderTest, running_airlock, settings_for_test
from tests.net import serve
from tests.rawmcp import modern_envelope, modern_headers

DEPLOY = "deploy"


class Options(BaseModel):
    dry_run: bool = True
    labels: list[str] = []


class Deployments:
    """What the upstream tool actually received, after the SDK's own (lax) validation."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []


def build_upstream(deployments: Deployments) -> Any:
    server = MCPServer("typed-upstream")

    @server.tool(name=DEPLOY)
    def deploy(
        target: str,
        force: bool = False,
        replicas: int = 1,
        notify: list[str] | None = None,
        options: Options | None = None,
    ) -> str:
        """Deploy `target`."""
        deployments.calls.append(
            {
                "target": target,
                "force": force,
                "replicas": replicas,
                "notify": notify,
                "options": None if options is None else options.model_dump(),
            }
        )
        return f"deployed {target}"

    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=["127.0.0.1:*"], allowed_origins=["http://127.0.0.1:*"]
    )
    return server.streamable_http_app(streamable_http_path="/mcp", transport_security=security)


Start = Callable[..., Awaitable[AirlockUnderTest]]


@pytest.fixture
def deployments() -> Deployments:
    return Deployments()


@pytest.fixture
async def start(tmp_path: Path, database_url: str, deployments: Deployments) -> AsyncIterator[Start]:
    """`await start(policy, strict_arguments=...)`: Airlock in front of the typed upstream."""
    async with serve(build_upstream(deployments)) as base, AsyncExitStack() as stack:

        async def run(policy: dict[str, Any], *, strict_arguments: bool = True) -> AirlockUnderTest:
            upstream = {
                "name": UPSTREAM,
                "url": f"{base}/mcp",
                "policy": str(tmp_path / "policy.json"),
                "strict_arguments": strict_arguments,
            }
            settings = settings_for_test(tmp_path, f"{base}/mcp", database_url, policy=policy, upstreams=[upstream])
            return await stack.enter_async_context(running_airlock(settings))

        yield run


def policy(*rules: dict[str, Any], default: str = "deny") -> dict[str, Any]:
    return {"version": "1", "default": default, "rules": [{"tool": DEPLOY, **rule} for rule in rules]}


NO_FORCE = policy({"when": {"force": True}, "action": "deny", "reason": "no forced deploys"}, {"action": "allow"})


async def call(airlock: AirlockUnderTest, mode: str, arguments: dict[str, Any]) -> tuple[bool, str]:
    async with airlock.client(mode=mode) as client:
        result = await client.call_tool(DEPLOY, arguments)
    text = " ".join(item.text for item in result.content if isinstance(item, TextContent))
    return bool(result.is_error), text


@pytest.mark.parametrize("force", ["true", 1, "yes"])
async def test_a_coerced_true_is_refused_by_the_schema_naming_the_field_and_the_type(
    start: Start, deployments: Deployments, mode: str, force: Any
) -> None:
    airlock = await start(NO_FORCE)
    is_error, text = await call(airlock, mode, {"target": "web", "force": force})
    assert is_error
    assert 'argument "force" must be a boolean' in text
    assert "did not run" in text and "correct the arguments" in text
    assert deployments.calls == []


@pytest.mark.parametrize("force", ["true", 1, "yes"])
async def test_without_strict_arguments_a_deny_rule_on_force_true_still_catches_a_coerced_true(
    start: Start, deployments: Deployments, mode: str, force: Any
) -> None:
    airlock = await start(NO_FORCE, strict_arguments=False)
    is_error, text = await call(airlock, mode, {"target": "web", "force": force})
    assert is_error
    assert "no forced deploys" in text
    assert deployments.calls == []


async def test_the_upstream_really_reads_a_string_true_as_true_which_is_why_airlock_must_not_allow_it(
    start: Start, deployments: Deployments
) -> None:
    """The premise of issue 10, shown on the official SDK: with nothing checking, "true" arrives as True."""
    airlock = await start(policy({"action": "allow"}), strict_arguments=False)
    is_error, _ = await call(airlock, "auto", {"target": "web", "force": "true", "notify": '["ceo\\u0040corp.com"]'})
    assert not is_error
    assert deployments.calls[-1]["force"] is True
    assert deployments.calls[-1]["notify"] == ["ceo@corp.com"]


async def test_well_typed_calls_are_judged_and_forwarded_as_before(
    start: Start, deployments: Deployments, mode: str
) -> None:
    airlock = await start(NO_FORCE)
    allowed = await call(
        airlock,
        mode,
        {
            "target": "web",
            "force": False,
            "replicas": 2,
            "notify": ["a@b.c"],
            "options": {"dry_run": False, "labels": ["x"]},
        },
    )
    denied = await call(airlock, mode, {"target": "web", "force": True})
    assert allowed == (False, "deployed web")
    assert denied[0] and "no forced deploys" in denied[1]
    assert [c["target"] for c in deployments.calls] == ["web"]


@pytest.mark.parametrize("strict_arguments", [True, False])
async def test_an_anchored_allow_regex_no_longer_admits_a_trailing_newline(
    start: Start, deployments: Deployments, mode: str, strict_arguments: bool
) -> None:
    airlock = await start(
        policy({"when": {"target": {"regex": "^[a-z]+$"}}, "action": "allow"}), strict_arguments=strict_arguments
    )
    refused = await call(airlock, mode, {"target": "abc\n"})
    allowed = await call(airlock, mode, {"target": "abc"})
    assert refused[0] and "default is deny" in refused[1]
    assert allowed == (False, "deployed abc")
    assert [c["target"] for c in deployments.calls] == ["abc"]


@pytest.mark.parametrize(
    ("strict_arguments", "expected"),
    [
        (True, 'argument "notify" must be an array or null, not the string'),
        (False, "the CEO is never notified"),
    ],
)
async def test_contains_on_a_list_given_as_a_json_string_is_not_allowed_through(
    start: Start, deployments: Deployments, mode: str, strict_arguments: bool, expected: str
) -> None:
    airlock = await start(
        policy(
            {"when": {"notify": {"contains": "ceo@corp.com"}}, "action": "deny", "reason": "the CEO is never notified"},
            {"action": "allow"},
        ),
        strict_arguments=strict_arguments,
    )
    is_error, text = await call(airlock, mode, {"target": "web", "notify": '["ceo\\u0040corp.com"]'})
    assert is_error and expected in text
    assert deployments.calls == []


@pytest.mark.parametrize(
    ("strict_arguments", "expected"),
    [
        (True, 'argument "options" must be an object or null, not the string'),
        (False, "only dry runs"),
    ],
)
async def test_a_path_into_a_model_given_as_a_json_string_fails_closed(
    start: Start, deployments: Deployments, mode: str, strict_arguments: bool, expected: str
) -> None:
    airlock = await start(
        policy(
            {"when": {"options.dry_run": {"exists": False}}, "action": "allow"},
            {"when": {"options.dry_run": False}, "action": "deny", "reason": "only dry runs"},
            {"action": "allow"},
        ),
        strict_arguments=strict_arguments,
    )
    is_error, text = await call(airlock, mode, {"target": "web", "options": '{"dry_run": false}'})
    assert is_error and expected in text
    assert deployments.calls == []


async def test_an_agent_that_calls_without_listing_tools_still_has_its_arguments_checked(
    start: Start, deployments: Deployments
) -> None:
    """No `tools/list` has passed through Airlock: it fetches the catalog itself before judging."""
    airlock = await start(NO_FORCE)
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": DEPLOY, "arguments": {"target": "web", "force": "true"}, "_meta": modern_envelope()},
    }
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            airlock.mcp_url, json=body, headers=modern_headers(await airlock.agent_token(), "tools/call", DEPLOY)
        )
    result = response.json()["result"]
    assert result["isError"] is True
    assert 'argument "force" must be a boolean, not the string "true"' in result["content"][0]["text"]
    assert deployments.calls == []


# --- the interceptor on its own: catalog fetching and the order of judgement ------------------

TOOLS = [
    {"name": DEPLOY, "inputSchema": {"type": "object", "properties": {"force": {"type": "boolean"}}}},
    {"name": "secret", "inputSchema": {"type": "object", "properties": {"x": {"type": "integer"}}}},
]


@pytest.fixture
async def interceptor_for(tmp_path: Path) -> AsyncIterator[Callable[..., tuple[Interceptor, Upstream]]]:
    async with aiohttp.ClientSession() as session:

        def build(document: dict[str, Any], *, strict_arguments: bool = True) -> tuple[Interceptor, Upstream]:
            path = tmp_path / "policy.json"
            path.write_text(json.dumps(document), encoding="utf-8")
            settings = UpstreamSettings(
                name=UPSTREAM, url="http://127.0.0.1:9/mcp", policy=path, strict_arguments=strict_arguments
            )
            # The limiter's database is never reached: these policies have no rate limits.
            return Interceptor(PolicyReloader({UPSTREAM: path}), RateLimiter(None)), Upstream(settings, session)  # type: ignore[arg-type]

        yield build


def tool_call(arguments: dict[str, Any], name: str = DEPLOY) -> ToolCall:
    return ToolCall(name=name, arguments=arguments, progress_token=None)


async def test_concurrent_first_calls_share_one_catalog_fetch_and_are_all_checked(
    interceptor_for: Callable[..., tuple[Interceptor, Upstream]],
) -> None:
    interceptor, upstream = interceptor_for(NO_FORCE)
    release, fetches = asyncio.Event(), []

    async def fetch() -> None:
        fetches.append(1)
        await release.wait()
        upstream.catalog.learn(TOOLS)

    async with asyncio.timeout(5):
        judging = [
            asyncio.create_task(interceptor.judge(upstream, "a", tool_call({"force": "true"}), fetch)) for _ in range(5)
        ]
        await asyncio.sleep(0)  # let every call reach the fetch (a yield, not a timed wait)
        release.set()
        verdicts = await asyncio.gather(*judging)
    assert fetches == [1]
    assert {(v.action, v.audit_decision, v.decision.rule) for v in verdicts} == {("refuse", "invalid", "inputSchema")}


async def test_when_the_catalog_cannot_be_fetched_the_policy_alone_judges_and_still_fails_closed(
    interceptor_for: Callable[..., tuple[Interceptor, Upstream]],
) -> None:
    interceptor, upstream = interceptor_for(NO_FORCE)
    fetches = []

    async def fetch() -> None:
        fetches.append(1)
        raise UpstreamUnavailable("down")

    first = await interceptor.judge(upstream, "a", tool_call({"force": "true"}), fetch)
    second = await interceptor.judge(upstream, "a", tool_call({"force": False}), fetch)
    assert (first.action, first.audit_decision, first.decision.rule) == ("refuse", "deny", "rules[0]")
    assert (second.action, second.audit_decision) == ("forward", "allow")
    assert fetches == [1], "a failed fetch is not retried on every call"


async def test_a_hidden_tool_is_refused_as_unknown_before_its_arguments_are_checked(
    interceptor_for: Callable[..., tuple[Interceptor, Upstream]],
) -> None:
    interceptor, upstream = interceptor_for({"version": "1", "default": "allow", "hide": ["secret"]})
    upstream.catalog.learn(TOOLS)
    verdict = await interceptor.judge(upstream, "a", tool_call({"x": "not a number"}, "secret"), _no_fetch)
    assert (verdict.action, verdict.audit_decision, verdict.text) == ("refuse", "hidden", "Unknown tool: secret")


@pytest.mark.parametrize(
    ("strict_arguments", "tool", "audit"),
    [
        (True, "not_in_the_catalog", "deny"),
        (False, DEPLOY, "deny"),
    ],
)
async def test_without_a_schema_to_check_the_policy_judges_and_fails_closed(
    interceptor_for: Callable[..., tuple[Interceptor, Upstream]], strict_arguments: bool, tool: str, audit: str
) -> None:
    document = {
        "version": "1",
        "rules": [{"tool": "*", "when": {"force": True}, "action": "deny"}, {"tool": "*", "action": "allow"}],
    }
    interceptor, upstream = interceptor_for(document, strict_arguments=strict_arguments)
    upstream.catalog.learn(TOOLS)
    verdict = await interceptor.judge(upstream, "a", tool_call({"force": "true"}, tool), _no_fetch)
    assert (verdict.action, verdict.audit_decision, verdict.decision.rule) == ("refuse", audit, "rules[0]")


async def _no_fetch() -> None:
    raise AssertionError("the catalog is known: no fetch")
