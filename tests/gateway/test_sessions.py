"""Handshake-era sessions are bounded per agent, expire when idle, and give the upstream its session back.

Provenance: spec (2025-11-25 Streamable HTTP: a server that ends a session answers 404 for its id,
and the client then initializes again; a client ends a session with DELETE) plus Airlock-defined
behaviour (issue 10, "One agent cannot take what others need": one agent filled the upstream's
session table until every other agent got 503).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import SessionSettings
from app.demo.upstream import DemoMarket, build_app
from app.sessions import SessionRegistry
from tests.gateway.test_relay import RecordingUpstream
from tests.gateway.test_resumption import cancel_call
from tests.harness import AirlockUnderTest, new_task, running_airlock, settings_for_test
from tests.net import serve
from tests.rawmcp import RawSession

LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@dataclass
class Gateway:
    airlock: AirlockUnderTest
    upstream: RecordingUpstream

    async def session(self, http: httpx.AsyncClient, agent: str = "agent-1") -> RawSession:
        session = RawSession(http, self.airlock.mcp_url, await self.airlock.agent_token(agent))
        await session.initialize()
        return session

    async def upstream_session_of(self, session: RawSession) -> str:
        assert session.session_id is not None
        row = await self.airlock.runtime.sessions.get_any(session.session_id)
        assert row is not None and row.upstream_session_id is not None
        return row.upstream_session_id

    def deleted(self) -> list[str | None]:
        """The upstream session ids Airlock sent DELETE for, in order."""
        return [r.headers.get("mcp-session-id") for r in self.upstream.requests if r.method == "DELETE"]


@pytest.fixture
async def gateway(tmp_path: Path, market: DemoMarket, database_url: str) -> AsyncIterator[Gateway]:
    upstream = RecordingUpstream(build_app(market))
    async with serve(upstream) as base:
        settings = settings_for_test(
            tmp_path, f"{base}/mcp", database_url, sessions={"max_per_agent": 2, "idle_seconds": 600}
        )
        async with running_airlock(settings) as airlock:
            yield Gateway(airlock, upstream)


async def status_of(http: httpx.AsyncClient, session: RawSession) -> int:
    return (await http.post(session.url, json=LIST, headers=session.headers())).status_code


async def test_ending_a_session_releases_the_upstream_session_behind_it(gateway: Gateway) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        session = await gateway.session(http)
        upstream_session = await gateway.upstream_session_of(session)
        ended = await http.delete(session.url, headers=session.headers())
        after = await status_of(http, session)
    assert ended.status_code == 200
    assert gateway.deleted() == [upstream_session]
    assert after == 404


async def test_an_agent_over_its_session_cap_loses_its_oldest_session_and_the_upstream_gets_it_back(
    gateway: Gateway,
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        other = await gateway.session(http, "agent-2")
        first, second = await gateway.session(http), await gateway.session(http)
        evicted_upstream = await gateway.upstream_session_of(first)
        assert gateway.deleted() == []
        third = await gateway.session(http)
        statuses = [await status_of(http, s) for s in (first, second, third, other)]
    assert statuses == [404, 200, 200, 200], "only agent-1's oldest session went; agent-2 is untouched"
    assert gateway.deleted() == [evicted_upstream]


async def test_an_idle_session_expires_answers_404_and_its_upstream_session_is_released(gateway: Gateway) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        session = await gateway.session(http)
        upstream_session = await gateway.upstream_session_of(session)
        assert await gateway.airlock.runtime.sessions.sweep(time.time() + 300) == (0, 0), "not idle long enough"
        closed, _ = await gateway.airlock.runtime.sessions.sweep(time.time() + 601)
        expired = await status_of(http, session)
        session.session_id = None
        await session.initialize()
        again = await status_of(http, session)
    assert closed == 1 and expired == 404, "an expired session is unknown: the client initializes again"
    assert gateway.deleted() == [upstream_session]
    assert again == 200


async def test_a_closed_session_is_purged_after_its_retention_unless_an_open_approval_needs_it(
    gateway: Gateway, market: DemoMarket
) -> None:
    airlock = gateway.airlock
    sessions = airlock.runtime.sessions
    async with httpx.AsyncClient(timeout=10) as http:
        session = await gateway.session(http)
        async with session.stream("POST", cancel_call(new_task(market).id)) as held:
            await held.next_event()
        await http.delete(session.url, headers=session.headers())
        kept = await sessions.purge(time.time() + 86401)
        approval = await airlock.wait_pending()
        await airlock.decide(approval["id"], "reject", reason="no")
        purged = await sessions.purge(time.time() + 86401)
    assert session.session_id is not None
    assert kept == 0 and purged == 1
    assert await sessions.get_any(session.session_id) is None


# --------------------------------------------------------------------------- in virtual time


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def registry(airlock: AirlockUnderTest, clock: Clock, **settings: Any) -> SessionRegistry:
    """A registry on the test's database, in virtual time, with upstreams that keep no sessions."""
    return SessionRegistry(airlock.runtime.db, SessionSettings(**{"idle_seconds": 100, **settings}), {}, clock=clock)


async def open_one(sessions: SessionRegistry, agent: str = "agent-1") -> str:
    row = await sessions.create(
        agent=agent,
        upstream="execution-market",
        upstream_session_id=None,
        protocol_version="2025-11-25",
        initialize_params="{}",
    )
    return row.id


async def test_a_session_in_use_stays_open_and_expires_once_left_idle(airlock: AirlockUnderTest) -> None:
    clock = Clock()
    sessions = registry(airlock, clock)
    session_id = await open_one(sessions)
    clock.now += 60
    assert await sessions.get(session_id) is not None
    assert await sessions.sweep(clock.now + 90) == (0, 0), "used 90 s before: not idle"
    clock.now += 101
    assert await sessions.sweep() == (1, 0)
    assert await sessions.get(session_id) is None


async def test_eviction_takes_the_least_recently_used_session_not_the_oldest(airlock: AirlockUnderTest) -> None:
    clock = Clock()
    sessions = registry(airlock, clock, max_per_agent=2)
    oldest = await open_one(sessions)
    clock.now += 1
    unused = await open_one(sessions)
    clock.now += 20
    assert await sessions.get(oldest) is not None
    clock.now += 1
    newest = await open_one(sessions)
    assert [await sessions.get(s) is not None for s in (oldest, unused, newest)] == [True, False, True]


async def test_a_session_another_replica_closed_is_refused_here_too(airlock: AirlockUnderTest) -> None:
    clock = Clock()
    here, there = registry(airlock, clock), registry(airlock, clock)
    session_id = await open_one(here)
    row = await there.get(session_id)
    assert row is not None and await there.end(row)
    clock.now += 11
    assert await here.get(session_id) is None, "the next recorded use finds the session closed"
