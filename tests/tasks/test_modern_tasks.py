"""Held calls as tasks of the 2026-07-28 extension `io.modelcontextprotocol/tasks`, over the wire: a
call the policy parks is answered at once with a task handle when the request declares the
extension; `tasks/get` follows the approval to the upstream's exact result, a rejection, a
withdrawal; the task belongs to the agent; clients that do not declare the extension are unchanged.

Provenance: spec (ext-tasks `specification/2026-07-28/tasks.md`; -32021 per its current text, not
the overview page's -32003) and Airlock-defined (issue 17, item 2; `../shared/reference/tasks.md`
§4), with Airlock under uvicorn, the real demo upstream counting executions, and raw JSON-RPC.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.demo.upstream import DemoMarket
from tests.conftest import StartAirlock
from tests.harness import UPSTREAM, AirlockUnderTest, new_task, running_airlock
from tests.rawmcp import EventReader, final_message, modern_envelope, modern_headers

EXTENSION = "io.modelcontextprotocol/tasks"
CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
NOT_FOUND = -32602
MISSING_CAPABILITY = -32021
HEADER_MISMATCH = -32020
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"

_ids = itertools.count(1)


class ModernAgent:
    """One agent's 2026-07-28 requests, declaring the tasks extension unless told not to."""

    def __init__(self, http: httpx.AsyncClient, url: str, token: str, *, tasks: bool = True) -> None:
        self.http, self.url, self.token, self.tasks = http, url, token, tasks

    def envelope(self) -> dict[str, Any]:
        envelope = modern_envelope()
        if self.tasks:
            envelope[CAPABILITIES] = {"extensions": {EXTENSION: {}}}
        return envelope

    async def request(self, method: str, params: dict[str, Any], *, name: str | None = None) -> httpx.Response:
        body = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": {**params, "_meta": self.envelope()}}
        return await self.http.post(self.url, json=body, headers=modern_headers(self.token, method, name))

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        response = await self.request("tools/call", {"name": tool, "arguments": arguments}, name=tool)
        assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
        answer: dict[str, Any] = response.json()
        return answer

    async def get(self, task_id: str, *, name: str | None = None) -> dict[str, Any]:
        return (await self.request("tasks/get", {"taskId": task_id}, name=name or task_id)).json()  # type: ignore[no-any-return]

    async def cancel(self, task_id: str) -> dict[str, Any]:
        return (await self.request("tasks/cancel", {"taskId": task_id}, name=task_id)).json()  # type: ignore[no-any-return]

    async def update(self, task_id: str) -> dict[str, Any]:
        params = {"taskId": task_id, "inputResponses": {"nope": {"action": "accept"}}}
        return (await self.request("tasks/update", params, name=task_id)).json()  # type: ignore[no-any-return]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def agent(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, name: str = "agent-1", *, tasks: bool = True
) -> ModernAgent:
    return ModernAgent(http, airlock.mcp_url, await airlock.agent_token(name), tasks=tasks)


def handle(answer: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = answer["result"]
    assert result["resultType"] == "task", answer
    return result


def cancel_arguments(market: DemoMarket) -> dict[str, Any]:
    return {"task_id": new_task(market).id, "reason": "x"}


async def test_server_discover_advertises_the_extension_only_to_a_client_that_declares_it(
    airlock: AirlockUnderTest, http: httpx.AsyncClient
) -> None:
    declaring = await (await agent(airlock, http)).request("server/discover", {})
    assert declaring.json()["result"]["capabilities"]["extensions"][EXTENSION] == {}
    plain = await (await agent(airlock, http, tasks=False)).request("server/discover", {})
    assert EXTENSION not in (plain.json()["result"]["capabilities"].get("extensions") or {})


async def test_a_parked_call_gets_a_task_handle_at_once_and_completes_with_the_upstreams_exact_result_once(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    task = handle(await session.call("em_cancel_task", cancel_arguments(market)))
    approval = await airlock.approval((await airlock.approvals("pending"))[0]["id"])
    assert task["status"] == "working" and task["taskId"].startswith("tsk_")
    assert approval["id"] in task["statusMessage"] and "keep polling" in task["statusMessage"]
    assert set(task) >= {"createdAt", "lastUpdatedAt", "ttlMs", "pollIntervalMs"}
    settings = airlock.settings.approvals
    assert task["ttlMs"] >= (settings.timeout_seconds + settings.result_retention_seconds) * 1000
    assert task["pollIntervalMs"] == airlock.settings.tasks.poll_interval_ms
    polled = (await session.get(task["taskId"]))["result"]
    assert polled["resultType"] == "complete" and polled["status"] == "working" and "result" not in polled
    assert market.calls["em_cancel_task"] == 0, "held, not run"

    assert (await airlock.decide(approval["id"])).status_code == 200
    await airlock.wait_status(approval["id"], "completed")
    done = (await session.get(task["taskId"]))["result"]
    assert done["status"] == "completed" and done["statusMessage"] == "Completed." and "pollIntervalMs" not in done
    assert done["result"]["structuredContent"]["status"] == "cancelled" and not done["result"].get("isError")
    assert (await session.get(task["taskId"]))["result"]["result"] == done["result"], "read again, the same"
    assert market.calls["em_cancel_task"] == 1


async def test_a_rejected_task_completes_with_an_error_result_naming_the_reviewer_and_the_reason(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    task = handle(await session.call("em_cancel_task", cancel_arguments(market)))
    approval = await airlock.wait_pending()
    await airlock.decide(approval["id"], "reject", reviewer="bob", reason="the customer paid already")
    done = (await session.get(task["taskId"]))["result"]
    assert done["status"] == "completed", "2026: a tool result with isError is completed, not failed"
    assert done["result"]["isError"] is True and "error" not in done
    text = done["result"]["content"][0]["text"]
    assert "bob" in text and "the customer paid already" in text
    assert "Rejected by bob" in done["statusMessage"] and "the customer paid already" in done["statusMessage"]
    assert market.calls["em_cancel_task"] == 0


async def test_cancelling_a_pending_task_withdraws_the_approval_and_the_call_never_runs(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    task = handle(await session.call("em_cancel_task", cancel_arguments(market)))
    approval = await airlock.wait_pending()
    assert (await session.cancel(task["taskId"]))["result"] == {"resultType": "complete"}, "an empty ack"
    assert (await airlock.approval(approval["id"]))["status"] == "withdrawn"
    assert (await airlock.decide(approval["id"])).status_code == 409, "too late to approve"
    assert (await session.cancel(task["taskId"]))["result"] == {"resultType": "complete"}, "again: still an ack"
    polled = (await session.get(task["taskId"]))["result"]
    assert polled["status"] == "cancelled" and "not executed" in polled["statusMessage"]
    assert market.calls["em_cancel_task"] == 0


async def test_cancelling_an_approved_task_is_acknowledged_and_the_call_completes(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    task = handle(await session.call("em_cancel_task", cancel_arguments(market)))
    approval = await airlock.wait_pending()
    await airlock.decide(approval["id"])
    await airlock.wait_status(approval["id"], "completed")
    assert (await session.cancel(task["taskId"]))["result"] == {"resultType": "complete"}
    assert (await session.get(task["taskId"]))["result"]["status"] == "completed", "a call that ran is not undone"
    assert market.calls["em_cancel_task"] == 1


async def test_another_agent_gets_not_found_for_every_task_request_and_changes_nothing(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    owner = await agent(airlock, http, "owner")
    task = handle(await owner.call("em_cancel_task", cancel_arguments(market)))
    intruder = await agent(airlock, http, "intruder")
    for attempt in (intruder.get, intruder.cancel, intruder.update):
        answer = await attempt(task["taskId"])
        assert answer["error"]["code"] == NOT_FOUND and "not found" in answer["error"]["message"]
    made_up = await owner.get("tsk_" + "A" * 32)
    assert made_up["error"] == answer["error"], "the same answer as for a task that does not exist"
    assert (await owner.get(task["taskId"]))["result"]["status"] == "working"
    assert (await airlock.approvals("pending"))[0]["status"] == "pending"


async def test_task_requests_without_the_extension_declared_get_missing_capability(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    task = handle(await (await agent(airlock, http)).call("em_cancel_task", cancel_arguments(market)))
    plain = await agent(airlock, http, tasks=False)
    for attempt in (plain.get, plain.cancel, plain.update):
        error = (await attempt(task["taskId"]))["error"]
        assert error["code"] == MISSING_CAPABILITY, "-32021 per the spec, not the overview page's -32003"
        assert error["data"] == {"requiredCapabilities": {"extensions": {EXTENSION: {}}}}
    assert (await airlock.approvals("pending"))[0]["status"] == "pending", "the cancel changed nothing"


async def test_mcp_name_must_be_the_task_id(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    task = handle(await session.call("em_cancel_task", cancel_arguments(market)))
    wrong = await session.request("tasks/get", {"taskId": task["taskId"]}, name="tsk_other")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == HEADER_MISMATCH
    missing = await session.request("tasks/cancel", {"taskId": task["taskId"]})
    assert missing.status_code == 400 and missing.json()["error"]["code"] == HEADER_MISMATCH
    assert (await airlock.approvals("pending"))[0]["status"] == "pending"
    no_id = await session.request("tasks/get", {}, name="x")
    assert no_id.json()["error"]["code"] == NOT_FOUND and "taskId" in no_id.json()["error"]["message"]


async def test_tasks_update_is_acknowledged_and_never_moves_the_task(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    task = handle(await session.call("em_cancel_task", cancel_arguments(market)))
    assert (await session.update(task["taskId"]))["result"] == {"resultType": "complete"}
    polled = (await session.get(task["taskId"]))["result"]
    assert polled["status"] == "working", "never input_required: the human is out of band"


async def test_an_identical_call_while_pending_gets_the_same_task(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    arguments = cancel_arguments(market)
    first = handle(await session.call("em_cancel_task", arguments))
    second = handle(await session.call("em_cancel_task", arguments))
    assert second["taskId"] == first["taskId"]
    assert len(await airlock.approvals("pending")) == 1


async def test_allowed_and_refused_calls_get_plain_results_even_with_the_extension(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    allowed = (await session.call("em_get_task", {"task_id": new_task(market).id}))["result"]
    assert allowed["resultType"] == "complete" and not allowed.get("isError")
    intern = await agent(airlock, http, "intern-bot")
    arguments = {"title": "t", "description": "d", "bounty_usd": 5, "deadline_hours": 1}
    refused = (await intern.call("em_publish_task", arguments))["result"]
    assert refused["resultType"] == "complete" and refused["isError"] is True
    assert market.calls["em_publish_task"] == 0


async def test_a_task_survives_an_airlock_restart_between_park_and_decision(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    task = handle(await session.call("em_cancel_task", cancel_arguments(market)))
    approval = await airlock.wait_pending()
    token = session.token
    await airlock.stack.aclose()  # this Airlock stops; a new process opens the same database
    async with running_airlock(airlock.settings) as restarted:
        restarted.tokens.update(airlock.tokens)
        again = ModernAgent(http, restarted.mcp_url, token)
        assert (await again.get(task["taskId"]))["result"]["status"] == "working"
        assert (await restarted.decide(approval["id"])).status_code == 200
        await restarted.wait_status(approval["id"], "completed")
        done = (await again.get(task["taskId"]))["result"]
        assert done["status"] == "completed" and done["result"]["structuredContent"]["status"] == "cancelled"
    assert market.calls["em_cancel_task"] == 1


async def test_a_plain_modern_held_call_still_waits_on_its_stream_as_before(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    plain = await agent(airlock, http, tasks=False)
    tool = "em_cancel_task"
    params = {"name": tool, "arguments": cancel_arguments(market), "_meta": plain.envelope()}
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
    async with http.stream(
        "POST", plain.url, json=body, headers=modern_headers(plain.token, "tools/call", tool)
    ) as held:
        assert held.headers["content-type"].startswith("text/event-stream")
        approval = await airlock.wait_pending()
        await airlock.decide(approval["id"])
        message = await final_message(held)
    assert message["result"]["resultType"] == "complete"
    assert message["result"]["structuredContent"]["status"] == "cancelled"
    assert market.calls["em_cancel_task"] == 1


async def test_an_expired_task_completes_with_an_error_result_saying_no_one_decided(
    start_airlock: StartAirlock, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    airlock = await start_airlock(approvals={"timeout_seconds": 1})
    session = await agent(airlock, http)
    task = handle(await session.call("em_cancel_task", cancel_arguments(market)))
    approval = await airlock.wait_pending()
    await airlock.wait_status(approval["id"], "expired")
    done = (await session.get(task["taskId"]))["result"]
    assert done["status"] == "completed" and done["result"]["isError"] is True
    assert "No decision within" in done["statusMessage"] and "not executed" in done["statusMessage"]
    assert market.calls["em_cancel_task"] == 0


async def test_on_a_merged_endpoint_a_held_call_is_a_task_too_and_tasks_get_needs_no_routing(
    start_airlock: StartAirlock, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    endpoint = {"name": "team", "upstreams": [UPSTREAM], "prefixes": {UPSTREAM: "market"}}
    airlock = await start_airlock(endpoints=[endpoint])
    session = ModernAgent(http, f"{airlock.url}/mcp/team", await airlock.agent_token())
    discovered = await session.request("server/discover", {})
    assert discovered.json()["result"]["capabilities"]["extensions"][EXTENSION] == {}
    task = handle(await session.call("market__em_cancel_task", cancel_arguments(market)))
    approval = await airlock.wait_pending()
    assert (await session.get(task["taskId"]))["result"]["status"] == "working"
    params = {"notifications": {"taskIds": [task["taskId"]]}, "_meta": session.envelope()}
    body = {"jsonrpc": "2.0", "id": 43, "method": "subscriptions/listen", "params": params}
    headers = modern_headers(session.token, "subscriptions/listen")
    async with http.stream("POST", session.url, json=body, headers=headers) as stream:
        async with asyncio.timeout(20):
            acknowledged = await EventReader(stream).next_message()
    assert acknowledged["params"]["notifications"] == {"taskIds": [task["taskId"]]}
    await airlock.decide(approval["id"])
    await airlock.wait_status(approval["id"], "completed")
    done = (await session.get(task["taskId"]))["result"]
    assert done["status"] == "completed" and done["result"]["structuredContent"]["status"] == "cancelled"
    assert market.calls["em_cancel_task"] == 1


async def test_a_tasks_cancel_sent_as_a_notification_withdraws_nothing(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    task = handle(await session.call("em_cancel_task", cancel_arguments(market)))
    body = {
        "jsonrpc": "2.0",
        "method": "tasks/cancel",
        "params": {"taskId": task["taskId"], "_meta": session.envelope()},
    }
    await http.post(session.url, json=body, headers=modern_headers(session.token, "tasks/cancel", task["taskId"]))
    assert (await session.get(task["taskId"]))["result"]["status"] == "working", "only a request can cancel"
    assert (await airlock.approvals("pending"))[0]["status"] == "pending"


async def test_reading_a_finished_task_counts_as_delivery_once_however_often_it_is_polled(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    task = handle(await session.call("em_cancel_task", cancel_arguments(market)))
    approval = await airlock.wait_pending()
    await airlock.decide(approval["id"], "reject", reviewer="bob", reason="no")
    for _ in range(3):
        assert (await session.get(task["taskId"]))["result"]["status"] == "completed"
    assert await airlock.steps(approval["id"], "delivered") == 1


async def test_an_approved_call_the_tool_answers_with_an_error_is_a_completed_task_carrying_that_error(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    task = handle(await session.call("em_cancel_task", {"task_id": "no-such-task", "reason": "x"}))
    approval = await airlock.wait_pending()
    await airlock.decide(approval["id"])
    await airlock.wait_status(approval["id"], "completed")
    done = (await session.get(task["taskId"]))["result"]
    assert done["status"] == "completed", "2026: not failed (that is for JSON-RPC errors only)"
    assert done["result"]["isError"] is True and "no-such-task" in done["result"]["content"][0]["text"]
    assert done["statusMessage"].startswith("Upstream tool reported an error")
    assert market.calls["em_cancel_task"] == 1


async def test_a_task_only_listen_stream_reports_the_agents_own_tasks_until_they_end(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    task = handle(await session.call("em_cancel_task", cancel_arguments(market)))
    others = handle(await (await agent(airlock, http, "other")).call("em_cancel_task", cancel_arguments(market)))
    ids = [task["taskId"], others["taskId"], "tsk_" + "A" * 32]
    params = {"notifications": {"taskIds": ids}, "_meta": session.envelope()}
    body = {"jsonrpc": "2.0", "id": 41, "method": "subscriptions/listen", "params": params}
    headers = modern_headers(session.token, "subscriptions/listen")
    async with http.stream("POST", session.url, json=body, headers=headers) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        reader = EventReader(stream)
        async with asyncio.timeout(20):
            acknowledged = await reader.next_message()
            assert acknowledged["method"] == "notifications/subscriptions/acknowledged"
            assert acknowledged["params"]["notifications"] == {"taskIds": [task["taskId"]]}, "only the agent's own"
            assert acknowledged["params"]["_meta"] == {SUBSCRIPTION_ID: 41}
            working = await reader.next_message()
            assert working["method"] == "notifications/tasks" and working["params"]["status"] == "working"
            pending = next(a for a in await airlock.approvals("pending") if a["id"] in task["statusMessage"])
            await airlock.decide(pending["id"])
            while (update := await reader.next_message())["params"]["status"] == "working":
                assert "result" not in update["params"]
    done = update["params"]
    assert done["taskId"] == task["taskId"] and done["status"] == "completed"
    assert done["result"]["structuredContent"]["status"] == "cancelled" and done["_meta"] == {SUBSCRIPTION_ID: 41}
    assert market.calls["em_cancel_task"] == 1


async def test_a_listen_stream_that_asks_for_more_than_tasks_is_relayed_to_the_upstream_as_before(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    task = handle(await session.call("em_cancel_task", cancel_arguments(market)))
    params = {"notifications": {"taskIds": [task["taskId"]], "toolsListChanged": True}, "_meta": session.envelope()}
    body = {"jsonrpc": "2.0", "id": 42, "method": "subscriptions/listen", "params": params}
    headers = modern_headers(session.token, "subscriptions/listen")
    async with http.stream("POST", session.url, json=body, headers=headers) as stream:
        async with asyncio.timeout(20):
            acknowledged = await EventReader(stream).next_message()
    assert acknowledged["method"] == "notifications/subscriptions/acknowledged"
    assert "taskIds" not in acknowledged["params"]["notifications"], "the client knows to poll tasks/get"


async def test_an_identical_call_after_the_decision_gets_the_same_task_as_it_now_is_and_runs_nothing_again(
    airlock: AirlockUnderTest, http: httpx.AsyncClient, market: DemoMarket
) -> None:
    session = await agent(airlock, http)
    arguments = cancel_arguments(market)
    first = handle(await session.call("em_cancel_task", arguments))
    approval = await airlock.wait_pending()
    await airlock.decide(approval["id"])
    await airlock.wait_status(approval["id"], "completed")
    again = handle(await session.call("em_cancel_task", arguments))
    assert again["taskId"] == first["taskId"] and again["status"] == "completed" and "result" not in again
    assert (await session.get(first["taskId"]))["result"]["status"] == "completed"
    once_more = handle(await session.call("em_cancel_task", arguments))
    assert once_more["taskId"] == first["taskId"], "after delivery too: the same task, not a second run"
    assert market.calls["em_cancel_task"] == 1
