"""SQLite at the documented load: concurrent calls, parks, decisions and CLI use, with no lock errors.

Provenance: Airlock-defined (issue 10, class 5: "concurrent decisions, calls and CLI use on SQLite
produce no 'database is locked' and no 503 from pool exhaustion"). `airlock serve` as a child
process (its own event loop, as in production) on one SQLite file, the official SDK client, and
`airlock` CLI processes reading and writing the same file at the same time.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.demo.upstream import DemoMarket
from tests.conftest import ON_POSTGRES
from tests.harness import DEFAULT_POLICY, SECRET_KEY, mcp_client, new_task
from tests.net import wait_for
from tests.processes import Cluster

pytestmark = pytest.mark.skipif(ON_POSTGRES, reason="SQLite's single writer is what this exercises")

ALLOWED = 100
PARKED = 50
BY_CLI = 5
"""Parks decided by `airlock approvals approve` processes (the rest by two reviewers at once, over the API)."""
TROUBLE = ("database is locked", "Traceback", " 503", "could not complete this request", "ERROR", "outcome_unknown")
BOUND = 90.0
"""A generous bound for the whole load on a loaded 2-core machine (it takes a few seconds)."""


async def test_concurrent_calls_parks_decisions_and_cli_writes_never_lock_or_fail(
    tmp_path: Path, database_url: str, upstream_url: str, market: DemoMarket
) -> None:
    cluster = await Cluster.create(
        tmp_path,
        database_url=database_url,
        upstream_url=upstream_url,
        policy=DEFAULT_POLICY,
        reviewers=2,
        approvals={"max_pending_per_agent": PARKED, "hold_seconds": BOUND, "execution_lease_seconds": 30},
    )  # the default, not the crash tests' 2 s
    airlock = await cluster.start()
    tasks = [new_task(market) for _ in range(PARKED)]
    try:
        started = time.monotonic()
        async with (
            mcp_client(cluster.mcp(airlock), cluster.agent_token) as client,
            httpx.AsyncClient(base_url=airlock.url, timeout=BOUND) as api,
            asyncio.timeout(BOUND),
        ):
            parked = [
                asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": t.id, "reason": "load"}))
                for t in tasks
            ]
            allowed = [
                asyncio.create_task(client.call_tool("em_get_task", {"task_id": t.id}))
                for t in tasks * (ALLOWED // PARKED)
            ]
            side = [
                asyncio.create_task(cli(cluster.config, "approvals", "list", "--status", "all", "--json")),
                asyncio.create_task(cli(cluster.config, "tokens", "create", "--agent", "cli-agent")),
            ]
            allowed_results = await asyncio.gather(*allowed)
            ids = await wait_pending(api, cluster.reviewer_tokens[0], PARKED)
            parks_seen = time.monotonic()
            by_cli = [
                asyncio.create_task(cli(cluster.config, "approvals", "approve", approval_id, "--as", "reviewer-1"))
                for approval_id in ids[:BY_CLI]
            ]
            by_api = await asyncio.gather(
                *(decide_twice(api, cluster.reviewer_tokens, approval_id) for approval_id in ids[BY_CLI:])
            )
            parked_results = await asyncio.gather(*parked)
            cli_results = await asyncio.gather(*side, *by_cli)
        finished = time.monotonic()
    finally:
        cluster.stop_all()

    log = airlock.log.read_text() + "".join(output for _, output in cli_results)
    trouble = [line for line in log.splitlines() if any(sign in line for sign in TROUBLE)]
    assert [result.content for result in allowed_results if result.is_error] == [], trouble
    assert [result.content for result in parked_results if result.is_error] == [], trouble
    assert by_api == [(200, 409)] * (PARKED - BY_CLI)
    assert [code for code, _ in cli_results] == [0] * len(cli_results), cli_results
    assert market.calls["em_cancel_task"] == PARKED
    assert trouble == []
    print(
        f"\n{ALLOWED} allowed calls and {PARKED} parks in {parks_seen - started:.2f} s; "
        f"all decided and delivered after {finished - started:.2f} s"
    )


async def wait_pending(api: httpx.AsyncClient, token: str, count: int) -> list[str]:
    """The ids of the pending approvals, once there are `count`."""
    ids: list[str] = []

    async def parked() -> bool:
        response = await api.get(
            "/api/approvals", params={"status": "pending", "limit": count}, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        ids[:] = [approval["id"] for approval in response.json()["approvals"]]
        return len(ids) >= count

    await wait_for(parked, timeout=BOUND, interval=0.05)
    return ids


async def decide_twice(api: httpx.AsyncClient, tokens: list[str], approval_id: str) -> tuple[int, ...]:
    """Two reviewers approve the same call at once: one wins (200), the other is told (409)."""
    answers = await asyncio.gather(
        *(
            api.post(f"/api/approvals/{approval_id}/approve", headers={"Authorization": f"Bearer {token}"})
            for token in tokens
        )
    )
    return tuple(sorted(answer.status_code for answer in answers))


async def cli(config: Path, *args: str) -> tuple[int, str]:
    """Run `airlock ARGS --config CONFIG`; its exit code and everything it printed."""
    env = {**os.environ, "AIRLOCK_SECRET_KEY": SECRET_KEY}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        *args,
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")
