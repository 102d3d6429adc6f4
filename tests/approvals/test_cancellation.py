"""Cancellation: an agent that gives up on a held call withdraws it, each era in its own way.

Provenance: spec (handshake era: `notifications/cancelled` is the cancel and a dropped stream is
not; 2026-07-28: closing the response stream is the cancel) plus Airlock-defined behaviour (the
2026 grace period in which an identical retry re-attaches instead).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from app.demo.upstream import DemoMarket
from tests.conftest import StartAirlock
from tests.harness import AirlockUnderTest, new_task
from tests.rawmcp import RawSession


async def test_a_handshake_era_cancellation_withdraws_the_pending_approval(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    task = new_task(market)
    async with airlock.client(mode="legacy") as client:
        with pytest.raises(MCPError):
            await client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}, read_timeout_seconds=1)
        approval_id = (await airlock.approvals("all"))[0]["id"]
        await airlock.wait_status(approval_id, "withdrawn")
    decision = await airlock.decide(approval_id, "approve")
    assert decision.status_code == 409 and "withdrawn by agent-1" in decision.json()["error"]
    assert market.calls["em_cancel_task"] == 0


async def test_a_dropped_2026_stream_withdraws_the_approval_after_the_grace_period(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    task = new_task(market)
    async with airlock.client(mode="auto") as client:
        with pytest.raises(MCPError):
            await client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}, read_timeout_seconds=1)
    approval_id = (await airlock.approvals("all"))[0]["id"]
    await airlock.wait_status(approval_id, "withdrawn")
    assert market.calls["em_cancel_task"] == 0


async def test_an_identical_retry_within_the_grace_period_keeps_a_2026_approval_alive(
    start_airlock: StartAirlock, market: DemoMarket
) -> None:
    airlock = await start_airlock(approvals={"cancel_grace_seconds": 30})
    task = new_task(market)
    arguments = {"task_id": task.id, "reason": "x"}
    async with airlock.client(mode="auto") as client:
        with pytest.raises(MCPError):
            await client.call_tool("em_cancel_task", arguments, read_timeout_seconds=1)
        approval_id = (await airlock.approvals("pending"))[0]["id"]
        retry = asyncio.create_task(client.call_tool("em_cancel_task", arguments))
        await airlock.wait_steps(approval_id, "attached")
        await airlock.decide(approval_id, "approve")
        async with asyncio.timeout(10):
            result = await retry
    assert not result.is_error
    assert market.calls["em_cancel_task"] == 1


async def test_a_cancellation_that_overtakes_its_call_withdraws_the_call_as_soon_as_it_is_parked(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    """A client that times out while its call is still being judged cancels before the park: the call
    must not wait for a reviewer whose yes would run what its agent gave up on."""
    task = new_task(market)
    async with httpx.AsyncClient(timeout=10) as http:
        session = RawSession(http, airlock.mcp_url, await airlock.agent_token())
        await session.initialize()
        cancel = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": 7, "reason": "timed out"},
        }
        assert (await http.post(session.url, json=cancel, headers=session.headers())).status_code == 202
        call = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "em_cancel_task", "arguments": {"task_id": task.id, "reason": "x"}},
        }
        async with session.stream("POST", call) as held, asyncio.timeout(10):
            answer = await held.next_message()
    assert answer["id"] == 7 and answer["result"]["isError"]
    [approval] = await airlock.approvals("all")
    assert approval["status"] == "withdrawn" and approval["decision_reason"] == "the client cancelled the request"
    assert (await airlock.decide(approval["id"], "approve")).status_code == 409
    assert market.calls["em_cancel_task"] == 0
