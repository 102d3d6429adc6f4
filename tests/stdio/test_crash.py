"""A stdio child that dies mid-call: a clear error for the call, and the next call works.

Provenance: Airlock-defined (issue 14, item 1). The upstream is `@modelcontextprotocol/server-everything`
over stdio (its `trigger-long-running-operation` keeps a call in flight); the child is killed with
SIGKILL, as a crash would end it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from app.stdio.session import ChildSession
from tests.harness import AirlockUnderTest
from tests.net import wait_for
from tests.stdio.conftest import ALLOW_ALL, StartStdio, stdio_upstream

LONG_CALL = {"duration": 120, "steps": 2}


async def only_session(airlock: AirlockUnderTest) -> ChildSession:
    upstream = stdio_upstream(airlock)
    await wait_for(lambda: any(s.in_flight for s in upstream.sessions.values()), timeout=10)
    [session] = upstream.sessions.values()
    return session


def text_of(result: Any) -> str:
    return " ".join(item.text for item in result.content if getattr(item, "type", "") == "text")


async def test_a_call_in_flight_when_the_child_dies_gets_a_clear_error_and_the_next_call_works(
    start_stdio: StartStdio, everything_command: list[str], mode: str
) -> None:
    airlock = await start_stdio(everything_command, ALLOW_ALL)
    async with airlock.client(mode=mode) as client:
        await client.list_tools()  # Airlock learns the schemas now, so the call is the only request in flight
        call = asyncio.ensure_future(client.call_tool("trigger-long-running-operation", LONG_CALL))
        session = await only_session(airlock)
        assert session.process is not None
        crashed_pid = session.process.pid
        session.process.kill()
        async with asyncio.timeout(10):
            with pytest.raises(MCPError) as failed:
                await call
        assert "exited" in str(failed.value) and "before answering" in str(failed.value)
        result = await client.call_tool("get-sum", {"a": 2, "b": 3})
        assert not result.is_error
        assert "5" in text_of(result)
        assert session.process.pid != crashed_pid


APPROVE_LONG_CALLS = {
    "version": "1",
    "default": "allow",
    "rules": [{"tool": "trigger-long-running-operation", "action": "approve", "reason": "long"}],
}


async def test_an_approved_call_cut_by_a_crash_is_outcome_unknown_and_never_sent_again(
    start_stdio: StartStdio, everything_command: list[str], mode: str
) -> None:
    airlock = await start_stdio(everything_command, APPROVE_LONG_CALLS)
    async with airlock.client(mode=mode) as client:
        await client.list_tools()
        call = asyncio.ensure_future(client.call_tool("trigger-long-running-operation", LONG_CALL))
        pending = await airlock.wait_pending()
        assert (await airlock.decide(pending["id"])).status_code == 200
        session = await only_session(airlock)
        assert list(session.in_flight) == [f'"airlock-{pending["id"]}"']
        assert session.process is not None
        session.process.kill()
        await airlock.wait_status(pending["id"], "outcome_unknown")
        async with asyncio.timeout(10):
            held = await call
            again = await client.call_tool("trigger-long-running-operation", LONG_CALL)
    assert held.is_error and again.is_error
    assert await airlock.steps(pending["id"], "executing") == 1
    assert not session.in_flight, "the identical call was sent to the server again"
