"""A real 2026-07-28 tasks client: `@modelcontextprotocol/ext-tasks` 0.2.2 over
`@modelcontextprotocol/client` 2.4.0 (pinned in `ext_tasks_client/package-lock.json`), through a held call.

Provenance: spec (ext-tasks `specification/2026-07-28/tasks.md`) and Airlock-defined (issue 17,
item 2): the package treats the session as a v2 task session only because Airlock's
`server/discover` advertises the extension as exactly `{}`; it gets the task handle at once,
polls `tasks/get` with `Mcp-Name` set to the task id, and settles on the task's `result`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest

from app.demo.upstream import DemoMarket
from tests.conftest import StartAirlock
from tests.harness import AirlockUnderTest, new_task
from tests.tasks.taskclient import ToolStream, require_client

CLIENT_DIR: Final = Path(__file__).resolve().parent / "ext_tasks_client"
SCRIPT: Final = CLIENT_DIR / "call_tool_task.mjs"


@pytest.fixture
async def airlock(start_airlock: StartAirlock) -> AirlockUnderTest:
    require_client(CLIENT_DIR, "ext-tasks")
    return await start_airlock(tasks={"poll_interval_ms": 100})


async def test_the_ext_tasks_client_settles_an_approved_held_call_with_the_upstreams_result(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    arguments = {"task_id": new_task(market).id, "reason": "x"}
    token = await airlock.agent_token()
    async with ToolStream(airlock.mcp_url, token, "em_cancel_task", arguments, script=SCRIPT) as client:
        assert await client.next() == {"type": "handle", "kind": "task"}
        approval = await airlock.wait_pending()
        assert market.calls["em_cancel_task"] == 0
        assert (await airlock.decide(approval["id"])).status_code == 200
        final = await client.until("result")
    assert final["type"] == "result", final
    assert final["result"]["structuredContent"]["status"] == "cancelled"
    assert market.calls["em_cancel_task"] == 1


async def test_the_ext_tasks_client_reads_the_reviewers_rejection_as_an_error_result(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    arguments = {"task_id": new_task(market).id, "reason": "x"}
    token = await airlock.agent_token()
    async with ToolStream(airlock.mcp_url, token, "em_cancel_task", arguments, script=SCRIPT) as client:
        assert await client.next() == {"type": "handle", "kind": "task"}
        approval = await airlock.wait_pending()
        await airlock.decide(approval["id"], "reject", reviewer="bob", reason="not this one")
        final = await client.until("result")
    assert final["type"] == "result", "2026: a rejection is a completed task with an isError result"
    assert final["result"]["isError"] is True
    text = final["result"]["content"][0]["text"]
    assert "bob" in text and "not this one" in text
    assert market.calls["em_cancel_task"] == 0


async def test_the_ext_tasks_client_cancels_a_pending_task_and_the_call_never_runs(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    arguments = {"task_id": new_task(market).id, "reason": "x"}
    token = await airlock.agent_token()
    script = ToolStream(airlock.mcp_url, token, "em_cancel_task", arguments, script=SCRIPT, extra=("cancel",))
    async with script as client:
        assert await client.next() == {"type": "handle", "kind": "task"}
        final = await client.until("cancelled")
    assert final["type"] == "cancelled", final
    assert (await airlock.approvals("withdrawn"))[0]["decided_by"] == "agent-1"
    assert market.calls["em_cancel_task"] == 0
