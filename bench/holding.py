"""Holding calls: memory per held call, and allowed-call latency while 10,000 calls are held.

Each held call is a real parked approval: a 2026-07-28 `tools/call` of a tool the policy sends to
human approval, with distinct arguments (so each is its own approval), whose SSE response stays
open. Memory is the growth of the Airlock process's resident set size divided by the number of
held calls; it includes everything a held call costs: its connection, its tasks and its share of
the database's page cache.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.load import ENVELOPE, MODERN, Run, ToolCallSpec, measure
from bench.procs import rss_bytes


@dataclass
class HeldCalls:
    http: aiohttp.ClientSession
    responses: list[aiohttp.ClientResponse]

    async def release(self) -> None:
        for response in self.responses:
            response.close()
        await self.http.close()


async def hold(url: str, token: str, count: int, *, tool: str = "em_cancel_task", parallel: int = 100) -> HeldCalls:
    """Open `count` held calls and wait until every one is parked (its stream has started)."""
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None, sock_read=None, connect=60)
    )
    headers = {
        "authorization": f"Bearer {token}",
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": tool,
    }
    gate = asyncio.Semaphore(parallel)
    responses: list[aiohttp.ClientResponse] = []

    async def open_one(index: int) -> None:
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": index,
                "method": "tools/call",
                "params": {
                    "name": tool,
                    "arguments": {"task_id": f"held-{index}", "reason": "bench"},
                    "_meta": ENVELOPE,
                },
            }
        )
        async with gate:
            response = await http.post(url, data=body, headers=headers)
            if response.status != 200 or "event-stream" not in response.headers.get("content-type", ""):
                raise RuntimeError(f"call {index} was not held: HTTP {response.status} {await response.text()}")
            await response.content.readany()  # the first bytes: the call is parked
            responses.append(response)

    await asyncio.gather(*(open_one(i) for i in range(count)))
    return HeldCalls(http, responses)


async def run(
    url: str, token: str, pid: int, *, count: int, allowed: ToolCallSpec, seconds: float, warmup: float = 1.0
) -> dict[str, Any]:
    idle: dict[str, Run] = {}
    for concurrency in (1, 8):
        idle[str(concurrency)] = await measure(
            url, era="modern", concurrency=concurrency, seconds=seconds, token=token, warmup=warmup, **allowed
        )
    before = rss_bytes(pid)
    held = await hold(url, token, count)
    after = rss_bytes(pid)
    try:
        loaded: dict[str, Run] = {}
        for concurrency in (1, 8):
            loaded[str(concurrency)] = await measure(
                url, era="modern", concurrency=concurrency, seconds=seconds, token=token, warmup=warmup, **allowed
            )
    finally:
        await held.release()
    return {
        "held_calls": count,
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "memory_per_held_call_kb": round((after - before) / count / 1024, 2),
        **{f"allowed_idle_c{c}": _summary(r) for c, r in idle.items()},
        **{f"allowed_while_holding_c{c}": _summary(r) for c, r in loaded.items()},
    }


def _summary(run: Run) -> dict[str, Any]:
    return {
        "p50_ms": round(run.percentile(50), 3),
        "p99_ms": round(run.percentile(99), 3),
        "throughput": round(run.throughput, 1),
        "errors": run.errors,
    }
