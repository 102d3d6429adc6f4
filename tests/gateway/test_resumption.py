"""Held streams survive dropped connections: a handshake-era client resumes with `Last-Event-ID`.

Provenance: spec (2025-11-25 Streamable HTTP: priming events, resumption via GET with
Last-Event-ID, ids that encode the stream) plus Airlock-defined behaviour (events are stored, so
the outcome reaches the client whichever replica it reconnects to; streams belong to their opener).
"""

from __future__ import annotations

import asyncio

import httpx

from app.demo.upstream import DemoMarket
from tests.harness import AirlockUnderTest, new_task
from tests.rawmcp import RawSession


def cancel_call(task_id: str, request_id: int = 7) -> dict[str, object]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "em_cancel_task", "arguments": {"task_id": task_id, "reason": "x"}},
    }


async def test_a_dropped_held_stream_is_not_a_cancellation_and_resumes_with_last_event_id(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    task = new_task(market)
    async with httpx.AsyncClient(timeout=10) as http:
        session = RawSession(http, airlock.mcp_url, await airlock.agent_token())
        await session.initialize()
        async with session.stream("POST", cancel_call(task.id)) as held:
            priming = await held.next_event()
        assert priming.id and priming.data == "" and priming.retry == 5000
        approval_id = (await airlock.approvals("pending"))[0]["id"]
        async with session.stream("GET", None, **{"last-event-id": priming.id}) as resumed:
            assert resumed.response.status_code == 200
            await airlock.decide(approval_id, "approve")
            async with asyncio.timeout(10):
                answer = await resumed.next_message()
    assert answer["id"] == 7
    assert answer["result"]["structuredContent"]["status"] == "cancelled"
    assert market.calls["em_cancel_task"] == 1


async def test_a_resumed_stream_replays_an_answer_sent_while_the_client_was_away(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    task = new_task(market)
    async with httpx.AsyncClient(timeout=10) as http:
        session = RawSession(http, airlock.mcp_url, await airlock.agent_token())
        await session.initialize()
        async with session.stream("POST", cancel_call(task.id, 9)) as held:
            priming = await held.next_event()
            assert priming.id is not None
            approval_id = (await airlock.approvals("pending"))[0]["id"]
        await airlock.decide(approval_id, "reject", reason="not now")
        await airlock.wait_status(approval_id, "rejected")
        async with session.stream("GET", None, **{"last-event-id": priming.id}) as resumed:
            async with asyncio.timeout(10):
                answer = await resumed.next_message()
    assert answer["id"] == 9
    assert answer["result"]["isError"] is True and "not now" in answer["result"]["content"][0]["text"]


async def test_another_agent_or_session_gets_nothing_from_a_stream_it_did_not_open(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    task = new_task(market)
    async with httpx.AsyncClient(timeout=10) as http:
        owner = RawSession(http, airlock.mcp_url, await airlock.agent_token("owner"))
        await owner.initialize()
        async with owner.stream("POST", cancel_call(task.id)) as held:
            priming = await held.next_event()
            assert priming.id is not None
        intruder = RawSession(http, airlock.mcp_url, await airlock.agent_token("intruder"))
        await intruder.initialize()
        other_session = RawSession(http, airlock.mcp_url, await airlock.agent_token("owner"))
        await other_session.initialize()
        stolen = await http.get(airlock.mcp_url, headers=intruder.headers(**{"last-event-id": priming.id}))
        sideways = await http.get(airlock.mcp_url, headers=other_session.headers(**{"last-event-id": priming.id}))
        forged = await http.get(airlock.mcp_url, headers=owner.headers(**{"last-event-id": "AAAA.1"}))
        hijack = await http.post(
            airlock.mcp_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={**intruder.headers(), "mcp-session-id": owner.session_id or ""},
        )
    assert [stolen.status_code, sideways.status_code, forged.status_code] == [404, 404, 404]
    assert hijack.status_code == 404, "a session id is useless to another agent"
