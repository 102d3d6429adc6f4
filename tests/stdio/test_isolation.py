"""Two agents at once on one stdio upstream: a process each, and only their own messages.

Provenance: Airlock-defined (issue 14, item 1: "no message of one agent may ever reach another").
The upstream is `@modelcontextprotocol/server-everything` over stdio: its progress notifications
are per request, its simulated log messages per session, and its sampling requests go from the
server to the agent whose call made them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mcp.client.session import ClientRequestContext
from mcp_types import CreateMessageRequestParams, CreateMessageResult, TextContent

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


async def test_a_sampling_request_reaches_only_the_agent_whose_call_made_it_and_its_answer_returns(
    start_stdio: StartStdio, everything_command: list[str], mode: str
) -> None:
    airlock = await start_stdio(everything_command, ALLOW_ALL)
    asked: dict[str, list[str]] = {"a": [], "b": []}

    def llm_of(agent: str) -> Any:
        async def llm(context: ClientRequestContext, params: CreateMessageRequestParams) -> CreateMessageResult:
            content = params.messages[0].content
            asked[agent].append(content.text if isinstance(content, TextContent) else "")
            return CreateMessageResult(
                role="assistant", model=f"llm-{agent}", content=TextContent(type="text", text=f"sampled by {agent}")
            )

        return llm

    async with (
        airlock.client("agent-a", mode=mode, sampling_callback=llm_of("a")) as a,
        airlock.client("agent-b", mode=mode, sampling_callback=llm_of("b")) as b,
    ):
        first, second = await asyncio.gather(
            a.call_tool("trigger-sampling-request", {"prompt": "question of a"}),
            b.call_tool("trigger-sampling-request", {"prompt": "question of b"}),
        )
    texts = [" ".join(getattr(item, "text", "") for item in r.content) for r in (first, second)]
    assert "sampled by a" in texts[0] and "sampled by b" not in texts[0]
    assert "sampled by b" in texts[1] and "sampled by a" not in texts[1]
    assert len(asked["a"]) == 1 and "question of a" in asked["a"][0]
    assert len(asked["b"]) == 1 and "question of b" in asked["b"][0]
