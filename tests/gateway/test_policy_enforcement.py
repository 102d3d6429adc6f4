"""The policy on the wire: what the official SDK client sees through Airlock, in both protocol eras.

Provenance: Airlock-defined behaviour (issue: gateway core), driven through the real `mcp` Client
in `mode="auto"` (2026-07-28) and `mode="legacy"` (handshake era) against the demo upstream.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.demo.upstream import DemoMarket
from tests.harness import DEFAULT_POLICY, AirlockUnderTest, new_task


def text_of(result: Any) -> str:
    return " ".join(item.text for item in result.content if getattr(item, "type", "") == "text")


async def test_allowed_call_reaches_the_upstream_and_its_result_comes_back(
    airlock: AirlockUnderTest, market: DemoMarket, mode: str
) -> None:
    task = new_task(market, title="Water the plants")
    async with airlock.client(mode=mode) as client:
        result = await client.call_tool("em_get_task", {"task_id": task.id})
    assert not result.is_error
    assert result.structured_content["title"] == "Water the plants"
    assert market.calls["em_get_task"] == 1


async def test_hidden_tool_is_missing_from_tools_list(airlock: AirlockUnderTest, mode: str) -> None:
    async with airlock.client(mode=mode) as client:
        tools = await client.list_tools()
    names = {tool.name for tool in tools.tools}
    assert "em_rate_worker" not in names
    assert {"em_get_task", "em_cancel_task", "em_publish_task"} <= names


async def test_hidden_tool_call_is_refused_as_unknown_and_never_reaches_upstream(
    airlock: AirlockUnderTest, market: DemoMarket, mode: str
) -> None:
    task = new_task(market, status="submitted")
    async with airlock.client(mode=mode) as client:
        result = await client.call_tool("em_rate_worker", {"task_id": task.id})
    assert result.is_error
    assert text_of(result) == "Unknown tool: em_rate_worker"
    assert market.calls["em_rate_worker"] == 0


async def test_seed_policy_hides_em_cancel_task_and_denies_everything_else(
    airlock: AirlockUnderTest, market: DemoMarket, mode: str
) -> None:
    airlock.set_policy({"version": "1", "default": "deny", "hide": ["em_cancel_task"]})
    task = new_task(market)
    async with airlock.client(mode=mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        cancel = await client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"})
        get = await client.call_tool("em_get_task", {"task_id": task.id})
    assert "em_cancel_task" not in names
    assert cancel.is_error and text_of(cancel) == "Unknown tool: em_cancel_task"
    assert get.is_error and "denied" in text_of(get) and "default is deny" in text_of(get)
    assert market.calls == {}


async def test_denial_reaches_the_agent_as_a_tool_error_with_the_policys_reason(
    airlock: AirlockUnderTest, market: DemoMarket, mode: str
) -> None:
    async with airlock.client("intern-bot", mode=mode) as client:
        result = await client.call_tool("em_publish_task", {"title": "t", "description": "d", "bounty_usd": 5})
    assert result.is_error
    assert "interns cannot publish" in text_of(result)
    assert "did not run" in text_of(result)
    assert market.calls["em_publish_task"] == 0


async def test_per_agent_rule_applies_only_to_that_agent(
    airlock: AirlockUnderTest, market: DemoMarket, mode: str
) -> None:
    async with airlock.client("writer-bot", mode=mode) as client:
        result = await client.call_tool("em_publish_task", {"title": "t", "description": "d", "bounty_usd": 5})
    assert not result.is_error
    assert market.calls["em_publish_task"] == 1


async def test_identity_comes_from_the_token_not_from_the_agent_id_argument(
    airlock: AirlockUnderTest, market: DemoMarket, mode: str
) -> None:
    async with airlock.client("intern-bot", mode=mode) as client:
        result = await client.call_tool(
            "em_publish_task", {"title": "t", "description": "d", "bounty_usd": 5, "agent_id": "writer-bot"}
        )
    assert result.is_error and "interns cannot publish" in text_of(result)
    assert market.calls["em_publish_task"] == 0


async def test_rate_limit_refuses_calls_past_the_maximum_per_agent(
    airlock: AirlockUnderTest, market: DemoMarket, mode: str
) -> None:
    arguments = {"title": "t", "description": "d", "bounty_usd": 5}
    async with airlock.client("writer-bot", mode=mode) as client:
        results = [await client.call_tool("em_publish_task", arguments) for _ in range(4)]
    async with airlock.client("other-bot", mode=mode) as client:
        other = await client.call_tool("em_publish_task", arguments)
    assert [r.is_error for r in results] == [False, False, False, True]
    assert "Rate limit reached for em_publish_task: at most 3 calls per 3600 s" in text_of(results[3])
    assert not other.is_error, "the limit is per agent identity"
    assert market.calls["em_publish_task"] == 4


@pytest.mark.parametrize(("bounty", "expected"), [(50, "allow"), (100, "allow"), (150, "approve")])
async def test_argument_condition_decides_between_rules(
    airlock: AirlockUnderTest, market: DemoMarket, mode: str, bounty: float, expected: str
) -> None:
    airlock.set_policy(
        {
            **DEFAULT_POLICY,
            "rules": [
                {
                    "tool": "em_publish_task",
                    "when": {"bounty_usd": {"gt": 100}},
                    "action": "deny",
                    "reason": "too large",
                },
                {"tool": "em_publish_task", "action": "allow"},
            ],
        }
    )
    async with airlock.client(mode=mode) as client:
        result = await client.call_tool("em_publish_task", {"title": "t", "description": "d", "bounty_usd": bounty})
    if expected == "allow":
        assert not result.is_error
        assert market.calls["em_publish_task"] == 1
    else:
        assert result.is_error and "too large" in text_of(result)
        assert market.calls["em_publish_task"] == 0


async def test_policy_reload_takes_effect_without_a_restart(
    airlock: AirlockUnderTest, market: DemoMarket, mode: str
) -> None:
    task = new_task(market)
    async with airlock.client(mode=mode) as client:
        before = await client.call_tool("em_get_task", {"task_id": task.id})
        airlock.set_policy(
            {
                "version": "1",
                "default": "deny",
                "rules": [{"tool": "em_get_task", "action": "deny", "reason": "reads are paused"}],
            }
        )
        after = await client.call_tool("em_get_task", {"task_id": task.id})
    assert not before.is_error
    assert after.is_error and "reads are paused" in text_of(after)
    assert market.calls["em_get_task"] == 1


async def test_a_broken_policy_edit_never_loads_and_the_last_good_policy_stays(
    airlock: AirlockUnderTest, market: DemoMarket, caplog: pytest.LogCaptureFixture
) -> None:
    task = new_task(market)
    airlock.policy_path.write_text('{"version": "1", "default": "alow"}', encoding="utf-8")
    import os
    import time

    stamp = time.time_ns() + 2_000_000_000
    os.utime(airlock.policy_path, ns=(stamp, stamp))
    assert airlock.runtime.policies.check_now() == []
    async with airlock.client() as client:
        result = await client.call_tool("em_get_task", {"task_id": task.id})
    assert not result.is_error
    assert any("default" in record.getMessage() for record in caplog.records if record.levelname == "ERROR")


async def test_annotation_defaults_approve_destructive_tools_and_allow_read_only_ones(
    airlock: AirlockUnderTest, market: DemoMarket, mode: str
) -> None:
    airlock.set_policy(
        {
            "version": "1",
            "default": "deny",
            "annotation_defaults": {"read_only": "allow", "destructive": "deny", "additive": "deny"},
        }
    )
    task = new_task(market)
    async with airlock.client(mode=mode) as client:
        read = await client.call_tool("em_get_task", {"task_id": task.id})
        cancel = await client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"})
        accept = await client.call_tool("em_accept_task", {"task_id": task.id})
    assert not read.is_error
    assert cancel.is_error and accept.is_error
    assert market.calls == {"em_get_task": 1}
