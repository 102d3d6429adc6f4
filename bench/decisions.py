"""Decision to result: from a reviewer's decision being accepted to the agent holding the final result.

Each trial parks one call (a 2026-07-28 `tools/call` held on replica `hold_url`), approves it
through the reviewers' API on replica `decide_url` (the same process on SQLite; another replica
on PostgreSQL), and times from the API's 200 to the last byte of the agent's result. That span
includes the upstream running the call, which is measured separately (the same tool called
direct) and subtracted at the median, as the issue asks for the figure without upstream time.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import aiohttp

from bench.load import ENVELOPE, MODERN, Run, measure


async def trial(http: aiohttp.ClientSession, hold_url: str, decide_url: str, token: str, reviewer: str) -> float:
    """One park-approve-deliver cycle; returns milliseconds from decision accepted to result received."""
    headers = {
        "authorization": f"Bearer {token}",
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": "em_cancel_task",
    }
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {
                "name": "em_cancel_task",
                "arguments": {"task_id": str(uuid.uuid4()), "reason": "bench"},
                "_meta": ENVELOPE,
            },
        }
    )
    review = {"authorization": f"Bearer {reviewer}"}
    async with http.post(f"{hold_url}/mcp/execution-market", data=body, headers=headers) as held:
        await held.content.readany()
        async with http.get(
            f"{decide_url}/api/approvals", params={"status": "pending", "limit": "1"}, headers=review
        ) as listing:
            approval_id = (await listing.json())["approvals"][0]["id"]
        async with http.post(f"{decide_url}/api/approvals/{approval_id}/approve", headers=review) as decided:
            await decided.read()
            if decided.status != 200:
                raise RuntimeError(f"approve failed: HTTP {decided.status}")
        accepted = time.perf_counter()
        async for line in held.content:
            if line.startswith(b"data:") and b'"result"' in line:
                return (time.perf_counter() - accepted) * 1000
    raise RuntimeError("the held stream ended without a result")


async def run(
    hold_url: str, decide_url: str, token: str, reviewer: str, upstream_url: str, *, trials: int
) -> dict[str, Any]:
    upstream = await measure(
        upstream_url,
        era="modern",
        concurrency=1,
        seconds=3,
        token=None,
        tool="em_cancel_task",
        arguments={"task_id": "no-such-task", "reason": "bench"},
        tool_errors_ok=True,
    )
    totals = Run()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        for _ in range(3):
            await trial(http, hold_url, decide_url, token, reviewer)  # warm-up
        for _ in range(trials):
            totals.latencies_ms.append(await trial(http, hold_url, decide_url, token, reviewer))
    upstream_ms = upstream.percentile(50)
    return {
        "trials": trials,
        "total_p50_ms": round(totals.percentile(50), 3),
        "total_p99_ms": round(totals.percentile(99), 3),
        "upstream_p50_ms": round(upstream_ms, 3),
        "p50_ms": round(totals.percentile(50) - upstream_ms, 3),
        "p99_ms": round(totals.percentile(99) - upstream_ms, 3),
    }
