"""A real task client: the Python SDK 1.30 (`call_tool_as_task`, `poll_task`, `get_task_result`)
through a held call, in an environment of its own (2.x has no tasks runtime).

Provenance: spec (MCP 2025-11-25 tasks) and Airlock-defined (issue 17): the 1.x client asks for a
60 s ttl by default, which Airlock overrides and reports; it polls at the suggested interval and
fetches the result once the task is terminal, including a failed task's isError result.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.demo.upstream import DemoMarket
from tests.conftest import StartAirlock
from tests.harness import AirlockUnderTest, new_task
from tests.tasks.pyclient import TaskCall, require_client


@pytest.fixture
def python() -> Path:
    return require_client()


@pytest.fixture
async def airlock(start_airlock: StartAirlock) -> AirlockUnderTest:
    return await start_airlock(tasks={"poll_interval_ms": 100})


async def test_the_python_task_client_gets_the_approved_calls_result_after_polling(
    airlock: AirlockUnderTest, market: DemoMarket, python: Path
) -> None:
    item = new_task(market)
    token = await airlock.agent_token()
    arguments = {"task_id": item.id, "reason": "x"}
    async with TaskCall(python, airlock.mcp_url, token, "em_cancel_task", arguments) as call:
        created = (await call.next())["created"]
        assert created["status"] == "working"
        settings = airlock.settings.approvals
        assert created["ttl"] == (settings.timeout_seconds + settings.result_retention_seconds) * 1000, "not 60 s"
        approval = await airlock.wait_pending()
        assert (await airlock.decide(approval["id"])).status_code == 200
        statuses, result = await call.until_result()
    assert statuses[-1]["status"] == "completed"
    assert result["structuredContent"]["status"] == "cancelled" and not result.get("isError")
    assert market.calls["em_cancel_task"] == 1


async def test_the_python_task_client_reads_the_rejection_in_the_status_and_the_result(
    airlock: AirlockUnderTest, market: DemoMarket, python: Path
) -> None:
    token = await airlock.agent_token()
    arguments = {"task_id": new_task(market).id, "reason": "x"}
    async with TaskCall(python, airlock.mcp_url, token, "em_cancel_task", arguments) as call:
        await call.next()
        approval = await airlock.wait_pending()
        await airlock.decide(approval["id"], "reject", reviewer="bob", reason="wrong task")
        statuses, result = await call.until_result()
    assert statuses[-1]["status"] == "failed" and "wrong task" in statuses[-1]["statusMessage"]
    assert result["isError"] is True and "wrong task" in result["content"][0]["text"]
    assert market.calls["em_cancel_task"] == 0
