"""One agent cannot hold more than `max_held_per_agent` requests open, and every hold gives its slot back.

Provenance: Airlock-defined (issue 10, "One agent cannot take what others need": one agent held
1,000 sockets in 30 s with identical calls, which attach without limit).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from app.approvals.hold import Hold, HoldEvent
from app.demo.upstream import DemoMarket
from app.gateway.limits import HeldLimits, TooManyHeld
from tests.conftest import StartAirlock
from tests.gateway.test_resumption import cancel_call
from tests.harness import AirlockUnderTest, new_task
from tests.net import wait_for
from tests.rawmcp import RawSession


async def held_count_is_zero(airlock: AirlockUnderTest) -> None:
    await wait_for(lambda: airlock.runtime.held.total() == 0, timeout=10)


async def open_session(http: httpx.AsyncClient, airlock: AirlockUnderTest, agent: str = "agent-1") -> RawSession:
    session = RawSession(http, airlock.mcp_url, await airlock.agent_token(agent))
    await session.initialize()
    return session


async def test_an_agent_over_its_held_cap_is_refused_with_a_reason_it_can_act_on(
    start_airlock: StartAirlock, market: DemoMarket
) -> None:
    airlock = await start_airlock(approvals={"max_held_per_agent": 2})
    task = new_task(market)
    async with httpx.AsyncClient(timeout=10) as http, AsyncExitStack() as holds:
        session = await open_session(http, airlock)
        held = [
            await holds.enter_async_context(session.stream("POST", cancel_call(task.id, request_id)))
            for request_id in (1, 2)
        ]  # kept referenced: a collected reader closes its stream
        for reader in held:
            await reader.next_event()
        refused = await http.post(airlock.mcp_url, json=cancel_call(task.id, 3), headers=session.headers())
        other = await open_session(http, airlock, "agent-2")
        async with other.stream("POST", cancel_call(task.id, 4)) as theirs:
            await theirs.next_event()
            assert airlock.runtime.held.count("agent-2") == 1, "another agent is not bound by agent-1's cap"
        assert airlock.runtime.held.count("agent-1") == 2
        approval_id = (await airlock.approvals("pending"))[-1]["id"]
        attached = await airlock.steps(approval_id, "attached")
    answer = refused.json()
    assert answer["id"] == 3 and answer["result"]["isError"] is True
    text = answer["result"]["content"][0]["text"]
    assert "agent agent-1 already holds 2 requests open" in text and "wait for one of them to finish" in text
    assert attached == 1, "the refused call never attached to the approval"
    await held_count_is_zero(airlock)


async def test_both_eras_refuse_a_call_over_the_held_cap_through_the_sdk_client(
    start_airlock: StartAirlock, market: DemoMarket, mode: str
) -> None:
    airlock = await start_airlock(approvals={"max_held_per_agent": 1})
    first, second = new_task(market), new_task(market)
    async with airlock.client(mode=mode) as client:
        held = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": first.id, "reason": "x"}))
        approval = await airlock.wait_pending()
        await wait_for(lambda: airlock.runtime.held.count("agent-1") == 1)
        refused = await client.call_tool("em_cancel_task", {"task_id": second.id, "reason": "x"})
        await airlock.decide(approval["id"], "reject", reason="no")
        async with asyncio.timeout(10):
            await held
    assert refused.is_error
    text = " ".join(getattr(item, "text", "") for item in refused.content)
    assert "agent agent-1 already holds 1 request open" in text
    assert len(await airlock.approvals("rejected")) == 1 and await airlock.approvals("pending") == []
    assert market.calls["em_cancel_task"] == 0
    await held_count_is_zero(airlock)


async def _end_by_outcome(airlock: AirlockUnderTest, session: RawSession, task_id: str) -> None:
    async with session.stream("POST", cancel_call(task_id)) as held:
        await held.next_event()
        assert airlock.runtime.held.count("agent-1") == 1
        approval = await airlock.wait_pending()
        await airlock.decide(approval["id"], "reject", reason="no")
        answer = await held.next_message()
    assert "no" in answer["result"]["content"][0]["text"]


async def _end_by_hold_budget(airlock: AirlockUnderTest, session: RawSession, task_id: str) -> None:
    async with session.stream("POST", cancel_call(task_id)) as held:
        await held.next_event()
        assert airlock.runtime.held.count("agent-1") == 1
        answer = await held.next_message()
    assert answer["result"]["_meta"], "the pending result, after the hold budget"


async def _end_by_disconnect(airlock: AirlockUnderTest, session: RawSession, task_id: str) -> None:
    async with session.stream("POST", cancel_call(task_id)) as held:
        await held.next_event()
        assert airlock.runtime.held.count("agent-1") == 1


async def _end_by_cancellation(airlock: AirlockUnderTest, session: RawSession, task_id: str) -> None:
    async with session.stream("POST", cancel_call(task_id, 7)) as held:
        await held.next_event()
        assert airlock.runtime.held.count("agent-1") == 1
        cancelled = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}
        await session.http.post(session.url, json=cancelled, headers=session.headers())
        answer = await held.next_message()
    assert answer["result"]["isError"] is True


async def _end_by_exception(airlock: AirlockUnderTest, session: RawSession, task_id: str) -> None:
    with contextlib.suppress(httpx.HTTPError):
        async with session.stream("POST", cancel_call(task_id)) as held:
            await held.next_message()


ENDINGS = {
    "outcome": _end_by_outcome,
    "hold budget": _end_by_hold_budget,
    "disconnect": _end_by_disconnect,
    "cancellation": _end_by_cancellation,
    "exception": _end_by_exception,
}


@pytest.mark.parametrize("ending", list(ENDINGS))
async def test_the_held_count_returns_to_zero_however_the_hold_ends(
    start_airlock: StartAirlock, market: DemoMarket, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    approvals: dict[str, Any] = {"max_held_per_agent": 1}
    if ending == "hold budget":
        approvals["hold_seconds"] = 0.5
    airlock = await start_airlock(approvals=approvals)
    if ending == "exception":

        async def broken(self: Hold) -> AsyncGenerator[HoldEvent, None]:
            raise RuntimeError("the hold broke")
            yield  # an async generator, like the method it replaces

        monkeypatch.setattr(Hold, "_wait", broken)
    async with httpx.AsyncClient(timeout=10) as http:
        session = await open_session(http, airlock)
        await ENDINGS[ending](airlock, session, new_task(market).id)
        await held_count_is_zero(airlock)
        if ending == "exception":
            return
        # The slot is usable again: with a cap of one, a second hold is accepted, not refused.
        async with session.stream("POST", cancel_call(new_task(market).id, 8)) as again:
            assert (await again.next_event()).id, "a priming event, not a refusal"
    await held_count_is_zero(airlock)


async def test_a_resumed_stream_holds_a_slot_too(start_airlock: StartAirlock, market: DemoMarket) -> None:
    airlock = await start_airlock(approvals={"max_held_per_agent": 1})
    async with httpx.AsyncClient(timeout=10) as http:
        session = await open_session(http, airlock)
        async with session.stream("POST", cancel_call(new_task(market).id, 1)) as first:
            priming = await first.next_event()
            assert priming.id is not None
        await held_count_is_zero(airlock)
        async with session.stream("POST", cancel_call(new_task(market).id, 2)) as second:
            await second.next_event()
            refused = await http.get(airlock.mcp_url, headers=session.headers(**{"last-event-id": priming.id}))
        async with session.stream("GET", None, **{"last-event-id": priming.id}) as resumed:
            assert resumed.response.status_code == 200
            await wait_for(lambda: airlock.runtime.held.count("agent-1") == 1)
    assert refused.status_code == 429
    assert "agent agent-1 already holds 1 request open" in refused.json()["error"]["message"]
    await held_count_is_zero(airlock)


async def test_a_cancelled_holder_gives_its_slot_back() -> None:
    limits = HeldLimits(1)
    entered = asyncio.Event()

    async def hold() -> None:
        with limits.acquire("agent-1"):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(hold())
    async with asyncio.timeout(5):
        await entered.wait()
    with pytest.raises(TooManyHeld):
        limits.acquire("agent-1")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert limits.total() == 0
    with limits.acquire("agent-1"):
        assert limits.count("agent-1") == 1
