"""The official filesystem server as a stdio upstream: policy, approvals and both client modes.

Provenance: Airlock-defined (issue 14, item 1). The upstream is `@modelcontextprotocol/server-filesystem`
from the npm registry, run by Airlock as a child process per session; the agent is the official
`mcp` 2.3 Client in `mode="auto"` (which falls back to the handshake: see `app/stdio/bridge.py`)
and `mode="legacy"`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.harness import AirlockUnderTest
from tests.stdio.conftest import stdio_upstream


def text_of(result: Any) -> str:
    return " ".join(item.text for item in result.content if getattr(item, "type", "") == "text")


async def test_an_allowed_read_runs_in_the_stdio_server_and_returns_the_file(
    filesystem_airlock: AirlockUnderTest, sandbox: Path, mode: str
) -> None:
    async with filesystem_airlock.client(mode=mode) as client:
        result = await client.call_tool("read_text_file", {"path": str(sandbox / "notes.txt")})
    assert not result.is_error
    assert "hello from the sandbox" in text_of(result)


async def test_tools_list_through_airlock_is_the_stdio_servers_list(
    filesystem_airlock: AirlockUnderTest, mode: str
) -> None:
    async with filesystem_airlock.client(mode=mode) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
    assert {"read_text_file", "write_file", "list_allowed_directories"} <= tools


async def test_a_path_outside_the_sandbox_is_denied_by_the_when_condition_and_never_reaches_the_server(
    filesystem_airlock: AirlockUnderTest, sandbox: Path, mode: str
) -> None:
    secret = sandbox.parent / "secret.txt"
    secret.write_text("not for agents", encoding="utf-8")
    async with filesystem_airlock.client(mode=mode) as client:
        outside = await client.call_tool("read_text_file", {"path": str(secret)})
        climbing = await client.call_tool("read_text_file", {"path": f"{sandbox}/../secret.txt"})
    for result in (outside, climbing):
        assert result.is_error
        assert "outside the sandbox" in text_of(result)
        assert "not for agents" not in text_of(result)


async def test_a_write_is_held_approved_through_the_api_and_executed_exactly_once(
    filesystem_airlock: AirlockUnderTest, sandbox: Path, mode: str
) -> None:
    target = sandbox / "approved.txt"
    async with filesystem_airlock.client(mode=mode) as client:
        call = asyncio.ensure_future(client.call_tool("write_file", {"path": str(target), "content": "written once"}))
        pending = await filesystem_airlock.wait_pending()
        assert pending["tool"] == "write_file"
        assert not target.exists(), "the write ran before anyone approved it"
        assert (await filesystem_airlock.decide(pending["id"])).status_code == 200
        async with asyncio.timeout(20):
            result = await call
    assert not result.is_error, text_of(result)
    assert target.read_text(encoding="utf-8") == "written once"
    await filesystem_airlock.wait_status(pending["id"], "completed")
    assert await filesystem_airlock.steps(pending["id"], "executing") == 1


async def test_a_write_approved_after_its_sessions_child_went_idle_runs_once_in_a_fresh_child(
    filesystem_airlock: AirlockUnderTest, sandbox: Path
) -> None:
    target = sandbox / "later.txt"
    upstream = stdio_upstream(filesystem_airlock)
    async with filesystem_airlock.client(mode="legacy") as client:
        call = asyncio.ensure_future(client.call_tool("write_file", {"path": str(target), "content": "after a nap"}))
        pending = await filesystem_airlock.wait_pending()
        [session] = upstream.sessions.values()
        idle = session.process
        await upstream.reap_idle(time.monotonic() + upstream.stdio.idle_seconds)
        assert upstream.processes() == []
        assert (await filesystem_airlock.decide(pending["id"])).status_code == 200
        async with asyncio.timeout(20):
            result = await call
    assert not result.is_error, text_of(result)
    assert target.read_text(encoding="utf-8") == "after a nap"
    assert session.process is not idle
    assert await filesystem_airlock.steps(pending["id"], "executing") == 1
