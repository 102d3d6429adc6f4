"""A real task client: the TypeScript SDK 1.32.2 (`client.experimental.tasks.callToolStream`) through a held call.

Provenance: spec (MCP 2025-11-25 tasks) and Airlock-defined (issue 17, item 1): the SDK asks for a
task only because Airlock advertises `capabilities.tasks` and marks the held tool
`taskSupport: "optional"`; it polls `tasks/get` at the suggested interval and fetches
`tasks/result` once the task is terminal; a failed task reaches it only through `statusMessage`.
"""

from __future__ import annotations

import pytest

from app.demo.upstream import DemoMarket
from tests.conftest import StartAirlock
from tests.harness import AirlockUnderTest, new_task
from tests.tasks.taskclient import ToolStream, require_client


@pytest.fixture
async def airlock(start_airlock: StartAirlock) -> AirlockUnderTest:
    require_client()
    return await start_airlock(tasks={"poll_interval_ms": 100})


async def test_the_typescript_task_client_gets_the_approved_calls_result_after_polling(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    item = new_task(market)
    token = await airlock.agent_token()
    async with ToolStream(airlock.mcp_url, token, "em_cancel_task", {"task_id": item.id, "reason": "x"}) as stream:
        created = await stream.next()
        assert created["type"] == "taskCreated" and created["task"]["status"] == "working"
        approval = await airlock.wait_pending()
        assert approval["id"] in created["task"]["statusMessage"]
        assert market.calls["em_cancel_task"] == 0
        assert (await airlock.decide(approval["id"])).status_code == 200
        final = await stream.until("result")
    assert final["type"] == "result", final
    assert final["result"]["structuredContent"]["status"] == "cancelled"
    assert final["result"]["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": created["task"]["taskId"]}
    assert market.calls["em_cancel_task"] == 1


async def test_the_typescript_task_client_learns_the_rejection_reason_from_the_status_message(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    item = new_task(market)
    token = await airlock.agent_token()
    async with ToolStream(airlock.mcp_url, token, "em_cancel_task", {"task_id": item.id, "reason": "x"}) as stream:
        created = await stream.next()
        approval = await airlock.wait_pending()
        await airlock.decide(approval["id"], "reject", reviewer="bob", reason="not this one")
        statuses = []
        while (message := await stream.next())["type"] == "taskStatus":
            statuses.append(message["task"])
    assert created["type"] == "taskCreated"
    assert message["type"] == "error", message
    failed = statuses[-1]
    assert failed["status"] == "failed"
    assert "Rejected by bob" in failed["statusMessage"] and "not this one" in failed["statusMessage"]
    assert market.calls["em_cancel_task"] == 0


async def test_the_typescript_task_client_learns_why_airlock_refused_a_call_at_once(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    token = await airlock.agent_token("intern-bot")
    arguments = {"title": "t", "description": "d", "bounty_usd": 5, "deadline_hours": 1}
    async with ToolStream(airlock.mcp_url, token, "em_publish_task", arguments) as stream:
        created = await stream.next()
        statuses = []
        while (message := await stream.next())["type"] == "taskStatus":
            statuses.append(message["task"])
    assert created["type"] == "taskCreated", "a task, not an unreadable plain result"
    assert message["type"] == "error"
    assert statuses[-1]["status"] == "failed" and "interns cannot publish" in statuses[-1]["statusMessage"]
    assert market.calls["em_publish_task"] == 0
