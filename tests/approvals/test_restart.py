"""Restarts lose nothing: held calls, decisions and outcomes survive SIGKILL, and an execution cut
off by a crash is reported as outcome_unknown, never re-sent.

Provenance: Airlock-defined behaviour (issue: human approval, "survive restarts"), with Airlock as
a real child process killed with SIGKILL, the official SDK client, and the demo upstream counting
executions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import TextContent

from app.demo.upstream import DemoMarket
from app.store import approvals as approval_store
from app.store.approvals import ApprovalRow
from app.store.db import Database
from tests.fakes.balancer import PRIMING_EVENT, Balancer
from tests.harness import DEFAULT_POLICY, mcp_client, new_task
from tests.net import wait_for
from tests.processes import Cluster


@pytest.fixture
async def cluster(tmp_path: Path, database_url: str, upstream_url: str) -> AsyncIterator[Cluster]:
    # The SDK client reconnects at most twice, `retry` ms apart: a 10 s hint gives a restarted
    # process 20 s to come up, which a loaded machine can need (the default 5 s gives it 10 s).
    cluster = await Cluster.create(
        tmp_path,
        database_url=database_url,
        upstream_url=upstream_url,
        policy=DEFAULT_POLICY,
        approvals={"hold_seconds": 120, "sse_retry_ms": 10_000},
    )
    try:
        yield cluster
    finally:
        cluster.stop_all()


async def test_a_held_call_survives_sigkill_and_the_reconnected_client_gets_the_result(
    cluster: Cluster, market: DemoMarket
) -> None:
    task = new_task(market)
    first = await cluster.start()
    async with (
        Balancer([("127.0.0.1", first.port)]).running() as balancer,
        mcp_client(cluster.mcp(balancer.url), cluster.agent_token, mode="legacy") as client,
    ):
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval_id = str((await cluster.wait_pending(first))["id"])
        # Crash only once the held stream has begun: a crash before its first byte leaves the client
        # nothing to resume (it would retry the identical call, the next test's case).
        async with asyncio.timeout(30):
            await balancer.sent(first.port, PRIMING_EVENT)
        first.kill()
        second = await cluster.start(first.port)
        assert [a["id"] for a in await cluster.pending(second)] == [approval_id], "still pending after the crash"
        assert await cluster.decide(second, approval_id) == 200
        async with asyncio.timeout(30):
            result = await call
    assert not result.is_error
    assert result.structured_content["status"] == "cancelled"
    assert market.calls["em_cancel_task"] == 1


async def test_a_2026_client_that_lost_its_connection_gets_the_outcome_on_an_identical_retry(
    cluster: Cluster, market: DemoMarket
) -> None:
    task = new_task(market)
    arguments = {"task_id": task.id, "reason": "x"}
    first = await cluster.start()
    url = cluster.mcp(first)
    async with mcp_client(url, cluster.agent_token, mode="auto") as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", arguments))
        approval_id = str((await cluster.wait_pending(first))["id"])
        first.kill()
        async with asyncio.timeout(15):
            lost = await asyncio.gather(call, return_exceptions=True)
        assert isinstance(lost[0], Exception), "the 2026 client sees its connection drop"
        second = await cluster.start(first.port)
        await cluster.decide(second, approval_id)
        async with asyncio.timeout(15):
            retry = await client.call_tool("em_cancel_task", arguments)
    assert not retry.is_error
    assert market.calls["em_cancel_task"] == 1


async def test_an_execution_cut_off_by_a_crash_is_reported_as_outcome_unknown_and_never_resent(
    cluster: Cluster, market: DemoMarket
) -> None:
    market.delay = 5.0
    task = new_task(market)
    first = await cluster.start()
    url = cluster.mcp(first)
    async with mcp_client(url, cluster.agent_token, mode="legacy") as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval_id = str((await cluster.wait_pending(first))["id"])
        await cluster.decide(first, approval_id)
        await wait_for(lambda: market.calls["em_cancel_task"] == 1, timeout=15)
        first.kill()
        await cluster.start(first.port)
        async with asyncio.timeout(30):
            result = await call
    assert result.is_error and isinstance(result.content[0], TextContent)
    text = result.content[0].text
    assert "may or may not have taken effect" in text and "will NOT re-send" in text
    assert market.calls["em_cancel_task"] == 1


async def test_a_2026_cancellation_is_carried_out_even_if_airlock_dies_during_the_grace_period(
    tmp_path: Path, database_url: str, upstream_url: str, market: DemoMarket
) -> None:
    """The closed stream schedules the withdrawal in the database; another process's sweeper does it."""
    cluster = await Cluster.create(
        tmp_path,
        database_url=database_url,
        upstream_url=upstream_url,
        policy=DEFAULT_POLICY,
        approvals={"hold_seconds": 120, "cancel_grace_seconds": 6},
    )
    db = Database(database_url)
    try:
        task = new_task(market)
        first = await cluster.start()
        async with mcp_client(cluster.mcp(first), cluster.agent_token, mode="auto") as client:
            with pytest.raises(MCPError):
                await client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}, read_timeout_seconds=1)
        approval_id = str((await cluster.wait_pending(first))["id"])

        async def stored() -> ApprovalRow:
            async with db.read() as conn:
                row = await approval_store.get(conn, approval_id)
            assert row is not None
            return row

        async def withdrawal_scheduled() -> bool:
            return (await stored()).withdraw_at is not None

        async def withdrawn() -> bool:
            return (await stored()).status == "withdrawn"

        await wait_for(withdrawal_scheduled, timeout=10)
        first.kill()
        killed_at = time.time()
        due = (await stored()).withdraw_at
        assert due is not None and (await stored()).status == "pending"
        # Whatever the restart takes on a busy machine, the withdrawal fell due after the process
        # that saw the client leave was dead, so only the restarted process can have carried it out.
        assert killed_at < due, "the grace period outlives the process that scheduled the withdrawal"
        second = await cluster.start(first.port)
        await wait_for(withdrawn, timeout=15)
        assert await cluster.decide(second, approval_id) == 409
    finally:
        cluster.stop_all()
        await db.dispose()
    assert market.calls["em_cancel_task"] == 0
