"""Running Airlock for real: one operator's day behind nginx, from the first call to SIGTERM.

Provenance: Airlock-defined (issue 16's "done means"): `airlock serve` as a child process behind
Debian's nginx configured as docs/operations.md says, the official SDK client in both protocol
eras, `/metrics` parsed with `prometheus_client`'s own parser, `/readyz` while the policy file and
then the database are broken, and SIGTERM while calls are held.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.types import TextContent
from prometheus_client.parser import text_string_to_metric_families

from app.demo.upstream import DemoMarket
from tests.harness import DEFAULT_POLICY, UPSTREAM, mcp_client, new_task
from tests.net import wait_for
from tests.nginx import nginx_in_front_of
from tests.processes import AirlockProcess, Cluster

GRACE_SECONDS = 20
# The default policy, plus a rule that refuses agent-1 (the only agent here) something.
POLICY: dict[str, Any] = {
    **DEFAULT_POLICY,
    "rules": [
        {"id": "no-rating", "tool": "em_submit_work", "action": "deny", "reason": "not today"},
        *DEFAULT_POLICY["rules"],
    ],
}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def behind_nginx(
    require_nginx: None, tmp_path: Path, database_url: str, upstream_url: str
) -> AsyncIterator[tuple[Cluster, AirlockProcess, str]]:
    cluster = await Cluster.create(
        tmp_path,
        database_url=database_url,
        upstream_url=upstream_url,
        policy=POLICY,
        approvals={"hold_seconds": 120, "sse_retry_ms": 10_000},
    )
    with cluster.config.open("a", encoding="utf-8") as config:
        config.write(f'\n[server]\nforwarded_allow_ips = ["127.0.0.1"]\nshutdown_grace_seconds = {GRACE_SECONDS}\n')
        config.write('\n[logging]\nformat = "json"\naccess_log = true\n')
    airlock = await cluster.start()
    try:
        async with nginx_in_front_of(airlock.port, tmp_path / "nginx") as proxy:
            yield cluster, airlock, proxy
    finally:
        cluster.stop_all()


async def scrape(base: str) -> Samples:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{base}/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def counters_moved(before: Samples, after: Samples) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        key: after[key] - before.get(key, 0.0)
        for key in after
        if key[0].endswith("_total") and after[key] != before.get(key, 0.0)
    }


def tool_calls(tool: str, decision: str, outcome: str) -> tuple[str, frozenset[tuple[str, str]]]:
    labels = {"upstream": UPSTREAM, "tool": tool, "decision": decision, "outcome": outcome}
    return "airlock_tool_calls_total", frozenset(labels.items())


async def readiness(base: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{base}/readyz")
    return response.status_code, response.json()


async def wait_readiness(base: str, status: int) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    async def reached() -> bool:
        code, body = await readiness(base)
        seen[:] = [body]
        return code == status

    await wait_for(reached, timeout=15, interval=0.1)
    return seen[0]


@contextmanager
def sqlite_write_lock(database_url: str) -> Iterator[None]:
    """Another process holds SQLite's write lock: Airlock's writes wait, as on a stuck disk."""
    connection = sqlite3.connect(database_url.split("///", 1)[1], isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


async def test_counters_readiness_and_sigterm_tell_an_operator_the_truth_behind_nginx(
    behind_nginx: tuple[Cluster, AirlockProcess, str], market: DemoMarket, tmp_path: Path
) -> None:
    cluster, airlock, proxy = behind_nginx
    url = Cluster.mcp(proxy)
    task = new_task(market)

    # Allowed, denied and held calls through nginx move the counters by exactly those calls.
    before = await scrape(proxy)
    async with mcp_client(url, cluster.agent_token) as client:
        for _ in range(2):
            assert not (await client.call_tool("em_get_task", {"task_id": task.id})).is_error
        assert (await client.call_tool("em_submit_work", {"task_id": task.id, "submission": "x"})).is_error
        held = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "dup"}))
        approval_id = str((await cluster.wait_pending(airlock))["id"])
        assert await cluster.decide(airlock, approval_id) == 200
        async with asyncio.timeout(15):
            assert not (await held).is_error
    after = await scrape(proxy)
    assert counters_moved(before, after) == {
        tool_calls("em_get_task", "allow", "ok"): 2,
        tool_calls("em_submit_work", "deny", "refused"): 1,
        tool_calls("em_cancel_task", "approve", "parked"): 1,
        ("airlock_approvals_total", frozenset({("upstream", UPSTREAM), ("status", "completed")})): 1,
    }
    assert market.calls["em_cancel_task"] == 1

    # A policy file broken on disk: not ready, and the check says which; fixed, ready again.
    policy_path = tmp_path / "policy.json"
    policy_path.write_text('{"version": "1", "rules": [{"tool": "x", "acton": "allow"}]}', encoding="utf-8")
    body = await wait_readiness(proxy, 503)
    assert body["checks"][f"policy:{UPSTREAM}"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    policy_path.write_text(json.dumps(POLICY), encoding="utf-8")
    await wait_readiness(proxy, 200)

    # A database that cannot be written: not ready, and the check says which.
    if cluster.database_url.startswith("sqlite"):
        with sqlite_write_lock(cluster.database_url):
            code, body = await readiness(proxy)
        assert code == 503
        assert body["checks"]["database"]["ok"] is False and "no answer" in body["checks"]["database"]["error"]
        assert body["checks"][f"policy:{UPSTREAM}"]["ok"] is True
        await wait_readiness(proxy, 200)

    # SIGTERM while a call is held in each era: each client gets something it can act on.
    second = new_task(market)
    arguments = {"task_id": second.id, "reason": "dup"}
    async with (
        mcp_client(url, cluster.agent_token, mode="auto") as modern,
        mcp_client(url, cluster.agent_token, mode="legacy") as legacy,
    ):
        await modern.list_tools()
        modern_call = asyncio.create_task(modern.call_tool("em_cancel_task", arguments))
        legacy_call = asyncio.create_task(legacy.call_tool("em_cancel_task", arguments))
        pending = await cluster.wait_pending(airlock)
        await wait_for(lambda: _held_requests(proxy, 2), timeout=15, interval=0.1)
        assert airlock.process is not None
        airlock.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            answer = await modern_call
        block = answer.content[0]
        assert isinstance(block, TextContent) and pending["id"] in block.text, answer
        popen: subprocess.Popen[bytes] = airlock.process
        await wait_for(lambda: popen.poll() is not None, timeout=GRACE_SECONDS, interval=0.05)
        assert popen.returncode == 0
        assert not legacy_call.done(), "the handshake-era stream ended resumably, without an answer"
        legacy_call.cancel()
    assert market.calls["em_cancel_task"] == 1, "nothing ran twice, nothing ran unapproved"
    log = airlock.log.read_text(encoding="utf-8")
    assert "Traceback" not in log, log


async def _held_requests(base: str, count: int) -> bool:
    samples = await scrape(base)
    return samples.get(("airlock_held_requests", frozenset()), 0.0) >= count
