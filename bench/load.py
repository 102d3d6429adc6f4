"""A lean MCP load generator: the same `tools/call` over and over, in either protocol era.

Raw aiohttp on uvloop rather than the SDK client, because on a 2-core machine the client shares
the CPU with the gateway and the upstream: a heavier client would measure itself. Each worker
keeps one connection (and, in the handshake era, one initialized session) and issues calls back
to back; latencies are wall-clock per call.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

import aiohttp

MODERN = "2026-07-28"
LEGACY = "2025-11-25"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "airlock-bench", "version": "1"},
}


class ToolCallSpec(TypedDict):
    """The `tools/call` a benchmark repeats: the `tool` and `arguments` keywords of `measure` and `Target`."""

    tool: str
    arguments: dict[str, Any]


@dataclass
class Run:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    @property
    def calls(self) -> int:
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class McpCaller:
    """One connection's worth of calls to one MCP endpoint."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        *,
        era: str,
        token: str | None,
        tool: str,
        arguments: dict[str, Any],
        tool_errors_ok: bool = False,
    ) -> None:
        self.http, self.url, self.era, self.tool, self.arguments = http, url, era, tool, arguments
        self.tool_errors_ok = tool_errors_ok
        self.headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        if token:
            self.headers["authorization"] = f"Bearer {token}"
        self._ids = itertools.count(1)

    async def open(self) -> None:
        if self.era == "modern":
            self.headers.update({"mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": self.tool})
            return
        body = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": LEGACY,
                "capabilities": {},
                "clientInfo": {"name": "airlock-bench", "version": "1"},
            },
        }
        async with self.http.post(self.url, json=body, headers=self.headers) as response:
            response.raise_for_status()
            session = response.headers.get("mcp-session-id")
            await response.read()
        if session:
            self.headers["mcp-session-id"] = session
        self.headers["mcp-protocol-version"] = LEGACY
        async with self.http.post(
            self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=self.headers
        ) as response:
            await response.read()

    def body(self) -> bytes:
        params: dict[str, Any] = {"name": self.tool, "arguments": self.arguments}
        if self.era == "modern":
            params["_meta"] = ENVELOPE
        return json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": "tools/call", "params": params}).encode()

    async def call(self) -> bool:
        async with self.http.post(self.url, data=self.body(), headers=self.headers) as response:
            payload = await response.read()
        ok = response.status == 200 and b'"result"' in payload
        return ok and (self.tool_errors_ok or b'"isError":true' not in payload)

    async def close(self) -> None:
        if "mcp-session-id" in self.headers:
            async with self.http.delete(self.url, headers=self.headers) as response:
                await response.read()


async def measure(
    url: str,
    *,
    era: str,
    concurrency: int,
    seconds: float,
    token: str | None,
    tool: str,
    arguments: dict[str, Any],
    warmup: float = 1.0,
    tool_errors_ok: bool = False,
    on_window: tuple[Callable[[], None], Callable[[], None]] | None = None,
) -> Run:
    """Run `concurrency` workers for `seconds` (after `warmup`, and until each has measured a call);
    every call's latency is kept.

    `on_window`, if given, is called as (start, stop): start when measuring begins, stop once the
    last measured call has returned, so what it reads (CPU times) covers the measured calls.
    """
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        callers = [
            McpCaller(http, url, era=era, token=token, tool=tool, arguments=arguments, tool_errors_ok=tool_errors_ok)
            for _ in range(concurrency)
        ]
        await asyncio.gather(*(caller.open() for caller in callers))
        run = Run()
        start = time.perf_counter()
        measure_from = start + warmup
        stop = measure_from + seconds

        async def open_window() -> None:
            await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
            if on_window:
                on_window[0]()

        async def worker(caller: McpCaller) -> None:
            measured = False
            # Every worker measures at least one call, so a window shorter than one call (a tiny
            # smoke run on a loaded machine) still yields figures; longer windows are unaffected.
            while (now := time.perf_counter()) < stop or not measured:
                ok = await caller.call()
                done = time.perf_counter()
                if now >= measure_from:
                    measured = True
                    if ok:
                        run.latencies_ms.append((done - now) * 1000)
                    else:
                        run.errors += 1

        await asyncio.gather(open_window(), *(worker(c) for c in callers))
        run.seconds = time.perf_counter() - measure_from
        if on_window:
            on_window[1]()
        await asyncio.gather(*(caller.close() for caller in callers), return_exceptions=True)
        return run
