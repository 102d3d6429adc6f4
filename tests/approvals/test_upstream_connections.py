"""An approved call is sent on a connection of its own, so a pooled connection that the upstream
closes at that very moment can never turn it into `outcome_unknown`.

Provenance: Airlock-defined (issue 10: an approved call runs once and its outcome reaches the
agent). Found by the SQLite load test: an upstream's keep-alive timeout expiring as Airlock reused
the connection reset the approved call, and Airlock, rightly, would not say whether it ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app.demo.upstream import DemoMarket
from tests.fakes.stale_proxy import StaleConnectionProxy
from tests.harness import AirlockUnderTest, new_task, running_airlock, settings_for_test


@pytest.fixture
async def stale_proxy(upstream_url: str) -> AsyncIterator[StaleConnectionProxy]:
    address = urlsplit(upstream_url)
    assert address.hostname is not None and address.port is not None
    async with StaleConnectionProxy(address.hostname, address.port).running() as proxy:
        yield proxy


@pytest.fixture
async def airlock(
    tmp_path: Path, database_url: str, stale_proxy: StaleConnectionProxy
) -> AsyncIterator[AirlockUnderTest]:
    async with running_airlock(settings_for_test(tmp_path, f"{stale_proxy.url}/mcp", database_url)) as airlock:
        yield airlock


async def test_an_approved_call_runs_on_a_fresh_connection_not_one_the_upstream_may_be_closing(
    airlock: AirlockUnderTest, stale_proxy: StaleConnectionProxy, market: DemoMarket, mode: str
) -> None:
    task = new_task(market)
    async with airlock.client(mode=mode) as client:
        await client.call_tool("em_list_tasks", {"status": "published"})  # leaves pooled connections behind
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval = await airlock.wait_pending()
        stale_proxy.stale()
        assert (await airlock.decide(approval["id"], "approve")).status_code == 200
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error, result.content
    assert (await airlock.approval(approval["id"]))["status"] == "completed"
    assert market.calls["em_cancel_task"] == 1
