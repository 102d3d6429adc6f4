"""SIGTERM drains: in-flight calls finish, held calls are handed back, the process exits 0.

Provenance: Airlock-defined (issue 16, item 5: clean shutdown), with Airlock as a real
`airlock serve` child process, the official SDK client in both protocol eras, and the demo
upstream counting executions.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp.types import TextContent

from app.demo.upstream import DemoMarket
from app.drain import Drain
from tests.harness import DEFAULT_POLICY, mcp_client, new_task
from tests.net import wait_for
from tests.processes import AirlockProcess, Cluster

GRACE_SECONDS = 20


@pytest.fixture
async def cluster(tmp_path: Path, database_url: str, upstream_url: str) -> AsyncIterator[Cluster]:
    # A 10 s `retry` hint gives a restarted process 20 s to come up before the SDK client gives up.
    cluster = await Cluster.create(
        tmp_path,
        database_url=database_url,
        upstream_url=upstream_url,
        policy=DEFAULT_POLICY,
        approvals={"hold_seconds": 120, "sse_retry_ms": 10_000},
    )
    with cluster.config.open("a", encoding="utf-8") as config:
        config.write(f"\n[server]\nshutdown_grace_seconds = {GRACE_SECONDS}\n")
    try:
        yield cluster
    finally:
        cluster.stop_all()


def _terminate(process: AirlockProcess) -> None:
    assert process.process is not None
    process.process.send_signal(signal.SIGTERM)


async def _exit_status(process: AirlockProcess, within: float) -> int:
    assert process.process is not None
    popen: subprocess.Popen[bytes] = process.process
    await wait_for(lambda: popen.poll() is not None, timeout=within, interval=0.05)
    return popen.returncode


def _log(process: AirlockProcess) -> str:
    return process.log.read_text(encoding="utf-8")


async def test_an_allowed_call_in_flight_at_sigterm_completes_and_the_process_exits_0(
    cluster: Cluster, market: DemoMarket
) -> None:
    market.delay = 2.0
    airlock = await cluster.start()
    async with mcp_client(cluster.mcp(airlock), cluster.agent_token) as client:
        await client.list_tools()  # the SDK validates results against the listed tools: list them first
        call = asyncio.create_task(client.call_tool("em_list_tasks", {}))
        await wait_for(lambda: market.calls["em_list_tasks"] == 1, timeout=15)
        terminated = time.monotonic()
        _terminate(airlock)
        async with asyncio.timeout(15):
            result = await call
    assert not result.is_error
    assert await _exit_status(airlock, within=GRACE_SECONDS) == 0
    assert time.monotonic() - terminated < GRACE_SECONDS
    log = _log(airlock)
    assert "Traceback" not in log and "timeout graceful shutdown exceeded" not in log, log
    assert "Application shutdown complete." in log


async def test_a_2026_held_call_gets_the_pending_result_at_sigterm_and_its_retry_the_outcome_after_restart(
    cluster: Cluster, market: DemoMarket
) -> None:
    task = new_task(market)
    arguments = {"task_id": task.id, "reason": "x"}
    first = await cluster.start()
    async with mcp_client(cluster.mcp(first), cluster.agent_token, mode="auto") as client:
        await client.list_tools()
        call = asyncio.create_task(client.call_tool("em_cancel_task", arguments))
        approval_id = str((await cluster.wait_pending(first))["id"])
        _terminate(first)
        async with asyncio.timeout(10):
            pending = await call
        assert await _exit_status(first, within=GRACE_SECONDS) == 0
        first_block = pending.content[0]
        assert isinstance(first_block, TextContent)
        text = first_block.text
        assert "nobody has decided yet" in text and approval_id in text, text
        second = await cluster.start(first.port)
        assert [a["id"] for a in await cluster.pending(second)] == [approval_id]
        assert await cluster.decide(second, approval_id) == 200
        async with asyncio.timeout(15):
            retry = await client.call_tool("em_cancel_task", arguments)
    assert not retry.is_error
    assert retry.structured_content["status"] == "cancelled"
    assert market.calls["em_cancel_task"] == 1
    assert "Traceback" not in _log(first), _log(first)


async def test_a_handshake_era_held_stream_ends_resumably_at_sigterm_and_resumes_after_restart(
    cluster: Cluster, market: DemoMarket
) -> None:
    task = new_task(market)
    first = await cluster.start()
    async with mcp_client(cluster.mcp(first), cluster.agent_token, mode="legacy") as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval_id = str((await cluster.wait_pending(first))["id"])
        _terminate(first)
        assert await _exit_status(first, within=GRACE_SECONDS) == 0
        assert not call.done(), "the stream ended without an answer: the client resumes it"
        second = await cluster.start(first.port)
        assert await cluster.decide(second, approval_id) == 200
        async with asyncio.timeout(30):
            result = await call
    assert not result.is_error
    assert result.structured_content["status"] == "cancelled"
    assert market.calls["em_cancel_task"] == 1
    assert "Traceback" not in _log(first), _log(first)


async def test_draining_wakes_every_waiter_at_once_and_later_ones_immediately() -> None:
    drain = Drain()
    early = asyncio.Event()
    with drain.waking(early):
        assert drain.waiting == 1 and not drain.started
        drain.begin(5)
        assert early.is_set() and drain.started and 0 < drain.remaining() <= 5
    late = asyncio.Event()
    with drain.waking(late):
        assert late.is_set()
    assert drain.waiting == 0


async def test_a_stream_that_would_never_end_is_cancelled_when_draining_starts() -> None:
    drain = Drain()
    forever = asyncio.Event()
    running = asyncio.create_task(drain.unless_draining(forever.wait()))
    drain.begin(1)  # before or after the task registers: either way it sees the drain
    async with asyncio.timeout(5):
        assert await running is False
    assert await drain.unless_draining(asyncio.sleep(0)) is True
