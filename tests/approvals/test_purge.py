"""Held streams and their stored events are purged after `stream_retention_seconds`, in bounded batches.

Provenance: Airlock-defined (issue 10, "One agent cannot take what others need": stored stream
events, streams and sessions grew without bound). Sessions' purge is in tests/gateway/test_sessions.py.
"""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import func, select

from app.approvals import sweeper
from app.demo.upstream import DemoMarket
from app.store.models import stream_events, streams
from tests.gateway.test_resumption import cancel_call
from tests.harness import AirlockUnderTest, new_task
from tests.rawmcp import RawSession

LATER = 86400 + 3600
"""Past the default retention, measured from the end of any hold in these tests."""


async def stored(airlock: AirlockUnderTest) -> tuple[int, int]:
    async with airlock.runtime.db.read() as conn:
        return (
            (await conn.execute(select(func.count()).select_from(streams))).scalar_one(),
            (await conn.execute(select(func.count()).select_from(stream_events))).scalar_one(),
        )


async def hold_and_leave(session: RawSession, task_id: str, request_id: int) -> str:
    """Hold a call until its priming event, then drop the stream; returns that event's id."""
    async with session.stream("POST", cancel_call(task_id, request_id)) as held:
        priming = await held.next_event()
    assert priming.id is not None
    return priming.id


async def test_a_stream_and_its_events_are_purged_after_their_retention_and_not_before(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        session = RawSession(http, airlock.mcp_url, await airlock.agent_token())
        await session.initialize()
        async with session.stream("POST", cancel_call(new_task(market).id)) as held:
            priming = await held.next_event()
            approval = await airlock.wait_pending()
            await airlock.decide(approval["id"], "reject", reason="no")
            await held.next_message()
        kept = await airlock.runtime.sweeper.purge(time.time())
        before = await stored(airlock)
        purged = await airlock.runtime.sweeper.purge(time.time() + LATER)
        after = await stored(airlock)
        resumed = await http.get(airlock.mcp_url, headers=session.headers(**{"last-event-id": priming.id or ""}))
    assert kept == 0 and before == (1, 2), "the priming event and the answer, kept while within retention"
    assert purged == 1 and after == (0, 0)
    assert resumed.status_code == 404


async def test_one_purge_pass_deletes_a_bounded_number_of_streams(
    airlock: AirlockUnderTest, market: DemoMarket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweeper, "_PURGE_BATCH", 2)
    monkeypatch.setattr(sweeper, "_PURGE_BATCHES", 1)
    task = new_task(market)
    async with httpx.AsyncClient(timeout=10) as http:
        session = RawSession(http, airlock.mcp_url, await airlock.agent_token())
        await session.initialize()
        for request_id in (1, 2, 3):
            await hold_and_leave(session, task.id, request_id)
    assert (await stored(airlock))[0] == 3, "an identical call attaches with a stream of its own"
    passes = [await airlock.runtime.sweeper.purge(time.time() + LATER) for _ in range(3)]
    assert passes == [2, 1, 0]
    assert await stored(airlock) == (0, 0)
