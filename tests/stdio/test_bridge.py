"""The stdio bridge's edges: the era it speaks, its caps, the child's environment, stderr, endings.

Provenance: Airlock-defined (issue 14, item 1; the choices are listed in `app/stdio/bridge.py`).
The upstream is `@modelcontextprotocol/server-everything` over stdio.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from app.stdio.pool import FORGET_AFTER_SECONDS
from app.stdio.process import STDERR_LINES_PER_WINDOW, StdioProcess
from tests.harness import UPSTREAM
from tests.net import wait_for
from tests.rawmcp import modern_envelope, modern_headers
from tests.stdio.conftest import ALLOW_ALL, StartStdio, stdio_upstream


def leaf_messages(exc: BaseException) -> str:
    """The messages of `exc`, or of every exception in it when it is a group (the SDK client raises groups)."""
    if isinstance(exc, BaseExceptionGroup):
        return " | ".join(leaf_messages(inner) for inner in exc.exceptions)
    return str(exc)


async def test_a_2026_07_28_request_is_refused_with_a_sentence_naming_the_limitation(
    start_stdio: StartStdio, everything_command: list[str]
) -> None:
    airlock = await start_stdio(everything_command, ALLOW_ALL)
    token = await airlock.agent_token()
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": modern_envelope()}}
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(airlock.mcp_url, json=body, headers=modern_headers(token, "tools/list"))
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "handshake era only" in message and "2026-07-28" in message
    assert stdio_upstream(airlock).processes() == [], "no child is started for a request it cannot serve"


async def test_an_initialize_beyond_max_processes_is_refused_with_one_clear_sentence(
    start_stdio: StartStdio, everything_command: list[str]
) -> None:
    airlock = await start_stdio(everything_command, ALLOW_ALL, max_processes=1)
    async with airlock.client("agent-a", mode="legacy") as first:
        assert not (await first.call_tool("get-sum", {"a": 1, "b": 1})).is_error
        with pytest.raises(BaseException) as refused:
            async with airlock.client("agent-b", mode="legacy"):
                pass
    assert "maximum of 1 processes" in leaf_messages(refused.value)


async def test_the_child_gets_its_configured_env_and_none_of_airlocks_own_variables(
    start_stdio: StartStdio, everything_command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRLOCK_TEST_LEAK", "do-not-pass-me-on")
    airlock = await start_stdio(everything_command, ALLOW_ALL, env={"GREETING": "hello-from-config"})
    async with airlock.client(mode="legacy") as client:
        result = await client.call_tool("get-env", {})
    text = " ".join(getattr(item, "text", "") for item in result.content)
    assert "hello-from-config" in text
    assert "do-not-pass-me-on" not in text


async def test_the_childs_stderr_reaches_airlocks_log_tagged_with_the_upstream(
    start_stdio: StartStdio, everything_command: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="airlock.stdio")
    airlock = await start_stdio(everything_command, ALLOW_ALL)
    async with airlock.client(mode="legacy") as client:
        await client.list_tools()
    await wait_for(lambda: any("Starting default (STDIO) server" in r.getMessage() for r in caplog.records))
    [line] = [r.getMessage() for r in caplog.records if "Starting default" in r.getMessage()][:1]
    assert line.startswith(f"stdio upstream {UPSTREAM!r} stderr: ")


async def test_ending_the_session_stops_its_child(start_stdio: StartStdio, everything_command: list[str]) -> None:
    airlock = await start_stdio(everything_command, ALLOW_ALL)
    async with airlock.client(mode="legacy") as client:
        await client.list_tools()
        assert len(stdio_upstream(airlock).processes()) == 1
    await wait_for(lambda: stdio_upstream(airlock).processes() == [])


async def test_an_idle_sessions_child_is_stopped_and_its_next_call_starts_a_fresh_one(
    start_stdio: StartStdio, everything_command: list[str]
) -> None:
    airlock = await start_stdio(everything_command, ALLOW_ALL)
    upstream = stdio_upstream(airlock)
    async with airlock.client(mode="legacy") as client:
        await client.list_tools()
        [session] = upstream.sessions.values()
        idle = session.process
        await upstream.reap_idle(time.monotonic() + upstream.stdio.idle_seconds)
        assert idle is not None and not idle.running
        assert upstream.processes() == []
        result = await client.call_tool("get-sum", {"a": 1, "b": 1})
        assert not result.is_error
        assert session.process is not idle and session.running


async def test_a_command_that_cannot_start_fails_initialize_with_the_reason(start_stdio: StartStdio) -> None:
    airlock = await start_stdio(["/nonexistent/mcp-server"], ALLOW_ALL)
    with pytest.raises(BaseException) as refused:
        async with airlock.client(mode="legacy"):
            pass
    assert "cannot start '/nonexistent/mcp-server'" in leaf_messages(refused.value)


async def test_a_call_the_client_cancels_stops_counting_as_in_flight(
    start_stdio: StartStdio, everything_command: list[str]
) -> None:
    airlock = await start_stdio(everything_command, ALLOW_ALL)
    upstream = stdio_upstream(airlock)
    async with airlock.client(mode="legacy") as client:
        await client.list_tools()
        with pytest.raises(MCPError):  # the SDK times out, then sends notifications/cancelled
            await client.call_tool(
                "trigger-long-running-operation", {"duration": 120, "steps": 2}, read_timeout_seconds=1
            )
        [session] = upstream.sessions.values()
        await wait_for(lambda: not session.in_flight)
        assert not (await client.call_tool("get-sum", {"a": 1, "b": 1})).is_error


async def test_a_child_flooding_stderr_is_logged_up_to_its_budget_then_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="airlock.stdio")
    flood = "import sys\nfor i in range(1000): print(f'noise {i}', file=sys.stderr)\nsys.stderr.flush()"

    async def ignore(line: bytes) -> None:
        del line

    process = await StdioProcess.start(
        (sys.executable, "-c", flood), tag="flooder", env={}, cwd=None, on_line=ignore, max_line_bytes=1024
    )
    async with asyncio.timeout(10):
        await process.exited
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("flooder stderr:")]
    assert len([m for m in messages if "noise" in m]) == STDERR_LINES_PER_WINDOW
    assert messages[-1] == f"flooder stderr: … {1000 - STDERR_LINES_PER_WINDOW} more lines not logged"


async def test_a_session_unused_for_a_day_is_forgotten(start_stdio: StartStdio, everything_command: list[str]) -> None:
    airlock = await start_stdio(everything_command, ALLOW_ALL)
    upstream = stdio_upstream(airlock)
    async with airlock.client(mode="legacy") as client:
        await client.list_tools()
        await upstream.reap_idle(time.monotonic() + FORGET_AFTER_SECONDS)
        assert upstream.sessions == {}
        with pytest.raises(MCPError):  # 404: the client must initialize again
            await client.call_tool("get-sum", {"a": 1, "b": 1})
