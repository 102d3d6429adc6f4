"""Held calls as MCP tasks (2025-11-25), over the wire: a task-augmented call the policy holds is
answered with a task at once; the task follows its approval to the upstream's exact result, a
rejection, a withdrawal; it belongs to the agent that created it; plain calls are unchanged.

Provenance: spec (MCP 2025-11-25 basic/utilities/tasks) and Airlock-defined (issue 17, item 1),
with Airlock under uvicorn, the real demo upstream counting executions, and raw JSON-RPC.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.demo.upstream import DemoMarket
from tests.conftest import StartAirlock
from tests.harness import AirlockUnderTest, new_task, running_airlock
from tests.tasks.wire import TaskSession, task_session

RELATED = "io.modelcontextprotocol/related-task"
NOT_FOUND = -32602


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def agent(airlock: AirlockUnderTest, http: httpx.AsyncClient, name: str = "agent-1") -> TaskSession:
    return await task_session(http, airlock.mcp_url, await airlock.agent_token(name))


def created(response: dict[str, Any]) -> dict[str, Any]:
    task: dict[str, Any] = response["result"]["task"]
    return task


async def test_initialize_advertises_tasks_and_marks_only_holdable_tools_optional(
    airlock: AirlockUnderTest, http: httpx.AsyncClient
) -> None:
    session = TaskSession(http, airlock.mcp_url, await airlock.agent_token())
    initialized = await session.initialize()
    assert initialized["result"]["capabilities"]["tasks"] == {
        "list": {},
        "cancel": {},
        "requests": {"tools": {"call": {}}},
    }
    listed = await session.request("tools/list", {})
    tools = {tool["name"]: tool for tool in listed["result"]["tools"]}
    assert tools["em_cancel_task"]["execution"] == {"taskSupport": "optional"}
    assert tools["em_publish_task"]["execution"] == {"taskSupport": "optional"}, "held above a bounty"
    assert "taskSupport" not in (tools["em_get_task"].get("execution") or {}), "never held"


async def test_an_approved_task_completes_with_the_upstreams_exact_result_and_runs_once(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    item = new_task(market)
    answer = await session.call("em_cancel_task", {"task_id": item.id, "reason": "x"}, ttl=60_000)
    task = created(answer)
    approval = await airlock.wait_pending()
    assert task["status"] == "working"
    assert task["taskId"].startswith("tsk_") and len(task["taskId"]) >= 4 + 32
    assert approval["id"] in task["statusMessage"] and "keep polling" in task["statusMessage"]
    settings = airlock.settings.approvals
    assert task["ttl"] >= (settings.timeout_seconds + settings.result_retention_seconds) * 1000, "not Python's 60 s"
    assert task["pollInterval"] == airlock.settings.tasks.poll_interval_ms
    assert market.calls["em_cancel_task"] == 0, "held, not run"

    assert (await airlock.decide(approval["id"])).status_code == 200
    result = (await session.result(task["taskId"]))["result"]
    assert result["_meta"][RELATED] == {"taskId": task["taskId"]}
    assert result["structuredContent"]["status"] == "cancelled"
    assert not result.get("isError")
    polled = (await session.get(task["taskId"]))["result"]
    assert polled["status"] == "completed" and polled["statusMessage"] == "Completed."
    assert market.calls["em_cancel_task"] == 1


async def test_a_rejected_task_fails_with_the_reviewers_reason_in_its_status_message(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    task = created(await session.call("em_cancel_task", {"task_id": new_task(market).id, "reason": "x"}))
    approval = await airlock.wait_pending()
    await airlock.decide(approval["id"], "reject", reviewer="bob", reason="the customer paid already")
    result = (await session.result(task["taskId"]))["result"]
    assert result["isError"] is True and result["_meta"][RELATED] == {"taskId": task["taskId"]}
    polled = (await session.get(task["taskId"]))["result"]
    assert polled["status"] == "failed"
    assert "Rejected by bob" in polled["statusMessage"] and "the customer paid already" in polled["statusMessage"]
    assert market.calls["em_cancel_task"] == 0


async def test_cancelling_a_pending_task_withdraws_the_approval_and_the_call_never_runs(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    task = created(await session.call("em_cancel_task", {"task_id": new_task(market).id, "reason": "x"}))
    approval = await airlock.wait_pending()
    cancelled = (await session.cancel(task["taskId"]))["result"]
    assert cancelled["status"] == "cancelled"
    assert (await airlock.approval(approval["id"]))["status"] == "withdrawn"
    assert (await airlock.decide(approval["id"])).status_code == 409, "too late to approve"
    again = await session.cancel(task["taskId"])
    assert again["error"]["code"] == NOT_FOUND and "already cancelled" in again["error"]["message"]
    assert (await session.get(task["taskId"]))["result"]["status"] == "cancelled"
    assert market.calls["em_cancel_task"] == 0


async def test_another_agent_can_neither_read_nor_list_nor_cancel_a_task(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    owner = await agent(airlock, http, "owner")
    task = created(await owner.call("em_cancel_task", {"task_id": new_task(market).id, "reason": "x"}))
    intruder = await agent(airlock, http, "intruder")
    for attempt in (intruder.get, intruder.result, intruder.cancel):
        answer = await attempt(task["taskId"])
        assert answer["error"] == {"code": NOT_FOUND, "message": "Invalid params: task not found"}
    assert await intruder.list() == []
    made_up = await owner.get("tsk_" + "A" * 32)
    assert made_up["error"]["code"] == NOT_FOUND, "the same answer as for a task that does not exist"
    assert [listed["taskId"] for listed in await owner.list()] == [task["taskId"]]
    assert (await owner.get(task["taskId"]))["result"]["status"] == "working", "the intruder changed nothing"


async def test_a_refused_task_call_gets_a_task_that_fails_with_the_refusal_as_its_status_message(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    intern = await agent(airlock, http, "intern-bot")
    arguments = {"title": "t", "description": "d", "bounty_usd": 5, "deadline_hours": 1}
    task = created(await intern.call("em_publish_task", arguments))
    assert task["status"] == "working", "every task starts working (spec), even one refused at once"
    polled = (await intern.get(task["taskId"]))["result"]
    assert polled["status"] == "failed" and "interns cannot publish" in polled["statusMessage"]
    result = (await intern.result(task["taskId"]))["result"]
    assert result["isError"] is True and "interns cannot publish" in result["content"][0]["text"]
    assert market.calls["em_publish_task"] == 0


async def test_an_identical_task_call_while_pending_gets_the_same_task(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    arguments = {"task_id": new_task(market).id, "reason": "x"}
    first = created(await session.call("em_cancel_task", arguments))
    second = created(await session.call("em_cancel_task", arguments))
    assert second["taskId"] == first["taskId"]
    assert len(await airlock.approvals("pending")) == 1


async def test_two_identical_task_calls_at_once_share_one_approval_and_one_task(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    one, other = await agent(airlock, http), await agent(airlock, http)
    arguments = {"task_id": new_task(market).id, "reason": "x"}
    answers = await asyncio.gather(one.call("em_cancel_task", arguments), other.call("em_cancel_task", arguments))
    assert len({created(answer)["taskId"] for answer in answers}) == 1
    assert len(await airlock.approvals("pending")) == 1
    assert [task["taskId"] for task in await one.list()] == [created(answers[0])["taskId"]]


async def test_a_call_the_policy_allows_also_gets_a_task_that_completes_with_the_upstreams_answer(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    item = new_task(market)
    plain = (await session.call("em_get_task", {"task_id": item.id}, ttl=None))["result"]
    task = created(await session.call("em_get_task", {"task_id": item.id}))
    assert task["status"] == "working", "every task starts working (spec)"
    result = (await session.result(task["taskId"]))["result"]
    assert result["_meta"] == {RELATED: {"taskId": task["taskId"]}}
    assert {k: v for k, v in result.items() if k != "_meta"} == {k: v for k, v in plain.items() if k != "_meta"}
    assert (await session.get(task["taskId"]))["result"]["status"] == "completed"
    assert market.calls["em_get_task"] == 2
    assert await airlock.approvals("pending") == []


async def test_a_plain_held_call_still_waits_on_its_stream_as_before(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    item = new_task(market)
    async with session.stream("POST", _plain_cancel(item.id)) as held:
        assert held.response.headers["content-type"].startswith("text/event-stream")
        approval = await airlock.wait_pending()
        await airlock.decide(approval["id"])
        message = await held.next_message()
        while "result" not in message:
            message = await held.next_message()
    assert "task" not in message["result"] and message["result"]["structuredContent"]["status"] == "cancelled"
    assert await session.list() == []


def _plain_cancel(task_id: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "em_cancel_task", "arguments": {"task_id": task_id, "reason": "x"}},
    }


async def test_a_task_survives_an_airlock_restart_and_the_same_agent_finds_it_in_a_new_session(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    task = created(await session.call("em_cancel_task", {"task_id": new_task(market).id, "reason": "x"}))
    approval = await airlock.wait_pending()
    token = await airlock.agent_token()
    await airlock.stack.aclose()  # this Airlock stops; a new process opens the same database
    async with running_airlock(airlock.settings) as restarted:
        restarted.tokens.update(airlock.tokens)
        assert (await restarted.decide(approval["id"])).status_code == 200
        again = await task_session(http, restarted.mcp_url, token)
        result = (await again.result(task["taskId"]))["result"]
        assert result["structuredContent"]["status"] == "cancelled"
        assert (await again.get(task["taskId"]))["result"]["status"] == "completed"
    assert market.calls["em_cancel_task"] == 1


async def test_tasks_result_keeps_the_stream_alive_and_is_bounded_by_the_hold_budget(
    start_airlock: StartAirlock, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    airlock = await start_airlock(approvals={"hold_seconds": 1, "keepalive_seconds": 0.1})
    session = await agent(airlock, http)
    task = created(await session.call("em_cancel_task", {"task_id": new_task(market).id, "reason": "x"}))
    body = {"jsonrpc": "2.0", "id": 5, "method": "tasks/result", "params": {"taskId": task["taskId"]}}
    async with session.stream("POST", body) as waiting:
        assert waiting.response.headers["content-type"].startswith("text/event-stream")
        keepalive = await waiting.next_event(skip_comments=False)
        assert keepalive.comment is not None and task["taskId"] in keepalive.comment
        answer = await waiting.next_message()
    assert answer["id"] == 5 and answer["error"]["code"] == -32603
    assert "still working" in answer["error"]["message"] and "tasks/get" in answer["error"]["message"]
    assert (await session.get(task["taskId"]))["result"]["status"] == "working", "waiting changed nothing"


async def test_any_replica_answers_for_a_task_another_replica_created(
    start_airlock: StartAirlock, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    first, second = await start_airlock(), await start_airlock()  # two processes, one database
    token = await first.agent_token()
    on_first = await task_session(http, first.mcp_url, token)
    task = created(await on_first.call("em_cancel_task", {"task_id": new_task(market).id, "reason": "x"}))
    on_second = await task_session(http, second.mcp_url, token)
    assert (await on_second.get(task["taskId"]))["result"]["status"] == "working"
    approval = await second.wait_pending()
    assert (await second.decide(approval["id"])).status_code == 200
    result = (await on_second.result(task["taskId"]))["result"]
    assert result["structuredContent"]["status"] == "cancelled"
    assert (await on_first.get(task["taskId"]))["result"]["status"] == "completed"
    assert market.calls["em_cancel_task"] == 1
