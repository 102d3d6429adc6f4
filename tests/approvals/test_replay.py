"""An outcome lost on the way never leads to a second execution (issue 10, class 2).

Provenance: regression plus Airlock-defined behaviour (`app/approvals/queue.py`, replays): an
approved call's outcome counts as delivered once written to the agent's stream; when a proxy
drops the connection before the agent reads it, the identical retry gets the stored outcome
again, marked as a replay, instead of a new approval a second "yes" would run again. Outcomes of
calls that did not run (rejected, expired, withdrawn) are not replayed. Raw HTTP in both eras,
through a loopback proxy that cuts the connection after the result's first byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from app.approvals.outcomes import APPROVAL_META_KEY
from app.demo.upstream import DemoMarket
from tests.fakes.cutting_proxy import CuttingProxy
from tests.harness import UPSTREAM, AirlockUnderTest, mcp_client, new_task
from tests.rawmcp import RawSession, final_message, modern_envelope, modern_headers


class RawAgent:
    """One agent's raw calls of one era, through `url`."""

    def __init__(self, http: httpx.AsyncClient, url: str, token: str, era: str) -> None:
        self.http, self.url, self.token, self.era = http, url, token, era
        self.session: RawSession | None = None
        self._ids = 0

    async def start(self) -> RawAgent:
        if self.era == "handshake":
            self.session = RawSession(self.http, self.url, self.token)
            await self.session.initialize()
        return self

    @asynccontextmanager
    async def call(self, tool: str, arguments: dict[str, Any]) -> AsyncIterator[httpx.Response]:
        """POST a `tools/call` (a fresh request id each time) and yield the streamed response."""
        self._ids += 1
        params: dict[str, Any] = {"name": tool, "arguments": arguments}
        if self.session is not None:
            headers = self.session.headers()
        else:
            params["_meta"] = modern_envelope()
            headers = modern_headers(self.token, "tools/call", tool)
        body = {"jsonrpc": "2.0", "id": self._ids, "method": "tools/call", "params": params}
        async with self.http.stream("POST", self.url, json=body, headers=headers) as response:
            yield response


@asynccontextmanager
async def proxied(airlock: AirlockUnderTest) -> AsyncIterator[CuttingProxy]:
    address = urlsplit(airlock.url)
    assert address.hostname is not None and address.port is not None
    async with CuttingProxy(address.hostname, address.port).running() as proxy:
        yield proxy


@pytest.mark.parametrize("era", ["modern", "handshake"])
async def test_an_outcome_lost_by_a_proxy_is_replayed_to_the_identical_retry_and_the_call_runs_once(
    airlock: AirlockUnderTest, market: DemoMarket, era: str
) -> None:
    task = new_task(market)
    arguments = {"task_id": task.id, "reason": "duplicate"}
    async with proxied(airlock) as proxy, httpx.AsyncClient(timeout=10) as http:
        agent = await RawAgent(http, f"{proxy.url}/mcp/{UPSTREAM}", await airlock.agent_token(), era).start()
        proxy.arm(b'"result"')
        with pytest.raises((httpx.HTTPError, StopAsyncIteration)):
            async with agent.call("em_cancel_task", arguments) as held:
                approval = await airlock.wait_pending()
                assert (await airlock.decide(approval["id"], "approve", reviewer="bob")).status_code == 200
                await final_message(held)
        async with asyncio.timeout(10):
            await proxy.cut.wait()
        assert (await airlock.approval(approval["id"]))["delivered_at"] is not None, (
            "Airlock counted the outcome as delivered: what the agent never read whole"
        )
        async with agent.call("em_cancel_task", arguments) as retry:
            answer = await final_message(retry)
    result = answer["result"]
    assert not result.get("isError") and result["structuredContent"]["status"] == "cancelled"
    meta = result["_meta"][APPROVAL_META_KEY]
    assert meta["id"] == approval["id"] and meta["replay"] is True
    assert meta["decidedBy"] == "bob" and meta["executedAt"]
    assert market.calls["em_cancel_task"] == 1, "the approved call ran once"
    assert len(await airlock.approvals("all")) == 1, "no second approval for a human to say yes to again"
    assert await airlock.steps(approval["id"], "replayed") == 1


async def test_a_replay_is_audited_and_an_identical_call_with_other_arguments_is_a_new_call(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    task = new_task(market)
    async with httpx.AsyncClient(timeout=10) as http:
        agent = RawAgent(http, airlock.mcp_url, await airlock.agent_token(), "modern")
        async with agent.call("em_cancel_task", {"task_id": task.id, "reason": "x"}) as held:
            approval = await airlock.wait_pending()
            await airlock.decide(approval["id"], "approve")
            await final_message(held)
        async with agent.call("em_cancel_task", {"task_id": task.id, "reason": "x"}) as again:
            replay = await final_message(again)
        async with agent.call("em_cancel_task", {"task_id": task.id, "reason": "y"}):
            changed = await airlock.wait_pending()
    assert replay["result"]["_meta"][APPROVAL_META_KEY]["replay"] is True
    assert changed["id"] != approval["id"] and changed["arguments"]["reason"] == "y"
    timeline = (await airlock.approval(approval["id"]))["timeline"]
    [step] = [entry for entry in timeline if entry["event"] == "replayed"]
    assert step["actor"] == "agent-1" and step["outcome"] == "completed"
    assert market.calls["em_cancel_task"] == 1


@pytest.mark.parametrize("era", ["modern", "handshake"])
async def test_a_rejected_outcome_is_not_replayed_an_identical_call_waits_for_a_human_again(
    airlock: AirlockUnderTest, market: DemoMarket, era: str
) -> None:
    task = new_task(market)
    arguments = {"task_id": task.id, "reason": "x"}
    async with httpx.AsyncClient(timeout=10) as http:
        agent = await RawAgent(http, airlock.mcp_url, await airlock.agent_token(), era).start()
        async with agent.call("em_cancel_task", arguments) as held:
            approval = await airlock.wait_pending()
            await airlock.decide(approval["id"], "reject", reason="not now")
            rejected = await final_message(held)
        async with agent.call("em_cancel_task", arguments):
            fresh = await airlock.wait_pending()
    assert rejected["result"]["_meta"][APPROVAL_META_KEY]["status"] == "rejected"
    assert fresh["id"] != approval["id"], "a new approval: the rejected call never ran"
    assert await airlock.steps(approval["id"], "replayed") == 0
    assert market.calls["em_cancel_task"] == 0


async def test_the_sdk_client_gets_a_lost_outcome_on_its_identical_retry_in_2026(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    """The same through the official SDK client (2026-07-28: a broken stream is an error to the caller)."""
    task = new_task(market)
    arguments = {"task_id": task.id, "reason": "duplicate"}
    async with proxied(airlock) as proxy:
        async with mcp_client(f"{proxy.url}/mcp/{UPSTREAM}", await airlock.agent_token(), mode="auto") as client:
            proxy.arm(b'"result"')
            call = asyncio.create_task(client.call_tool("em_cancel_task", arguments))
            approval = await airlock.wait_pending()
            await airlock.decide(approval["id"], "approve")
            async with asyncio.timeout(10):
                await proxy.cut.wait()
                with pytest.raises(MCPError):
                    await call
                retry = await client.call_tool("em_cancel_task", arguments)
    assert not retry.is_error and retry.structured_content["status"] == "cancelled"
    assert retry.meta is not None and retry.meta[APPROVAL_META_KEY]["replay"] is True
    assert market.calls["em_cancel_task"] == 1
    assert len(await airlock.approvals("all")) == 1
