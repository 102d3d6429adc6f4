"""Several Airlock replicas on one PostgreSQL keep every guarantee of a single process.

Provenance: Airlock-defined behaviour (issue: scale out on PostgreSQL). Two real `airlock serve`
processes share the machine's PostgreSQL; the official SDK client talks to one replica directly or
through a small TCP balancer; the demo upstream counts executions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.demo.upstream import DemoMarket
from tests.fakes.balancer import PRIMING_EVENT, Balancer
from tests.harness import DEFAULT_POLICY, mcp_client, new_task
from tests.net import wait_for
from tests.processes import AirlockProcess, Cluster

pytestmark = pytest.mark.postgres


class Replicas(Cluster):
    """Two replicas, A and B, on one PostgreSQL."""

    @property
    def a(self) -> AirlockProcess:
        return self.processes[0]

    @property
    def b(self) -> AirlockProcess:
        return self.processes[1]


@pytest.fixture
async def replicas(tmp_path: Path, postgres_url: str, upstream_url: str) -> AsyncIterator[Replicas]:
    # A slow safety poll: within these tests' bounded waits, only LISTEN/NOTIFY can wake a replica.
    replicas = await Replicas.create(
        tmp_path,
        database_url=postgres_url,
        upstream_url=upstream_url,
        policy=DEFAULT_POLICY,
        reviewers=4,
        approvals={"hold_seconds": 120, "safety_poll_seconds": 60},
    )
    try:
        await asyncio.gather(replicas.start(), replicas.start())
        yield replicas
    finally:
        replicas.stop_all()


async def test_a_decision_on_replica_b_wakes_the_client_held_on_replica_a(
    replicas: Replicas, market: DemoMarket, mode: str
) -> None:
    task = new_task(market)
    async with mcp_client(replicas.mcp(replicas.a), replicas.agent_token, mode=mode) as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval = await replicas.wait_pending(replicas.b)
        assert await replicas.decide(replicas.b, approval["id"]) == 200
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error
    assert market.calls["em_cancel_task"] == 1


async def test_when_a_replica_dies_the_client_reconnects_to_another_and_gets_the_outcome(
    replicas: Replicas, market: DemoMarket
) -> None:
    task = new_task(market)
    async with Balancer([("127.0.0.1", replicas.a.port), ("127.0.0.1", replicas.b.port)]).running() as balancer:
        async with mcp_client(replicas.mcp(balancer.url), replicas.agent_token, mode="legacy") as client:
            call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
            approval = await replicas.wait_pending(replicas.b)
            # Crash A only once its held stream has begun: a crash before the first byte leaves the
            # client nothing to resume (it would retry the identical call, a different test's case).
            async with asyncio.timeout(30):
                await balancer.sent(replicas.a.port, PRIMING_EVENT)
            replicas.a.kill()
            assert await replicas.decide(replicas.b, approval["id"]) == 200
            async with asyncio.timeout(30):
                result = await call
    assert not result.is_error
    assert result.structured_content["status"] == "cancelled"
    assert market.calls["em_cancel_task"] == 1


async def test_200_concurrent_approvals_over_both_replicas_run_the_upstream_once(
    replicas: Replicas, market: DemoMarket
) -> None:
    task = new_task(market)
    arguments = {"task_id": task.id, "reason": "x"}
    async with (
        mcp_client(replicas.mcp(replicas.a), replicas.agent_token) as on_a,
        mcp_client(replicas.mcp(replicas.b), replicas.agent_token) as on_b,
    ):
        held = [asyncio.create_task(client.call_tool("em_cancel_task", arguments)) for client in (on_a, on_b)]
        approval = await replicas.wait_pending(replicas.a)
        await wait_for(lambda: _attachments(replicas, approval["id"]), timeout=15)
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as http:
            statuses = await asyncio.gather(
                *(
                    replicas.decide(replicas.a if i % 2 else replicas.b, approval["id"], reviewer=i % 4, http=http)
                    for i in range(200)
                )
            )
        async with asyncio.timeout(20):
            results = await asyncio.gather(*held)
    assert sorted(statuses) == [200] + [409] * 199
    assert [r.is_error for r in results] == [False, False]
    assert market.calls["em_cancel_task"] == 1


async def _attachments(replicas: Replicas, approval_id: str) -> bool:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(
            f"{replicas.a.url}/api/approvals/{approval_id}",
            headers={"Authorization": f"Bearer {replicas.reviewer_tokens[0]}"},
        )
    return any(entry["event"] == "attached" for entry in response.json()["timeline"])


async def test_rate_limits_are_counted_across_replicas(replicas: Replicas, market: DemoMarket) -> None:
    arguments = {"title": "t", "description": "d", "bounty_usd": 5}
    async with (
        mcp_client(replicas.mcp(replicas.a), replicas.agent_token) as on_a,
        mcp_client(replicas.mcp(replicas.b), replicas.agent_token) as on_b,
    ):
        results = await asyncio.gather(
            *(client.call_tool("em_publish_task", arguments) for client in (on_a, on_b, on_a, on_b, on_a, on_b))
        )
    assert sorted(r.is_error for r in results) == [False] * 3 + [True] * 3
    assert market.calls["em_publish_task"] == 3
