"""Two agents at once on one stdio upstream: a process each, and only their own messages.

Provenance: Airlock-defined (issue 14, item 1: "no message of one agent may ever reach another").
The upstream is `@modelcontextprotocol/server-everything` over stdio: its progress notifications
are per request, its simulated log messages per session.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.stdio.conftest import ALLOW_ALL, StartStdio, stdio_upstream


async def test_two_agents_at_once_get_a_process_each_and_never_see_each_others_messages(
    start_stdio: StartStdio, everything_command: list[str], mode: str
) -> None:
    airlock = await start_stdio(everything_command, ALLOW_ALL)
    logs: dict[str, list[Any]] = {"a": [], "b": []}
    progress: dict[str, list[tuple[float, float | None]]] = {"a": [], "b": []}
    a_logged = asyncio.Event()

    async def log_a(params: Any) -> None:
        logs["a"].append(params)
        a_logged.set()

    async def log_b(params: Any) -> None:
        logs["b"].append(params)

    def progress_of(agent: str) -> Any:
        async def record(done: float, total: float | None, message: str | None) -> None:
            progress[agent].append((done, total))

        return record

    async with (
        airlock.client("agent-a", mode=mode, logging_callback=log_a) as a,
        airlock.client("agent-b", mode=mode, logging_callback=log_b) as b,
    ):
        await a.call_tool("toggle-simulated-logging", {})
        first, second = await asyncio.gather(
            a.call_tool(
                "trigger-long-running-operation", {"duration": 1, "steps": 3}, progress_callback=progress_of("a")
            ),
            b.call_tool(
                "trigger-long-running-operation", {"duration": 1, "steps": 5}, progress_callback=progress_of("b")
            ),
        )
        async with asyncio.timeout(15):
            await a_logged.wait()
        sessions = list(stdio_upstream(airlock).sessions.values())
        pids = {session.process.pid for session in sessions if session.process is not None}
    assert not first.is_error and not second.is_error
    assert len(sessions) == 2 and len(pids) == 2
    assert [total for _, total in progress["a"]] == [3, 3, 3]
    assert [total for _, total in progress["b"]] == [5, 5, 5, 5, 5]
    assert logs["b"] == [], "agent b received agent a's log messages"
