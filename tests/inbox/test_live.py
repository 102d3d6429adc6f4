"""The live feed: every change to an approval reaches an open inbox page as a server-sent event.

Provenance: Airlock-defined (issue: web approval inbox, "updating live without reload"), read over
a real socket (httpx streaming against uvicorn), because `ASGITransport` buffers whole responses.
"""

from __future__ import annotations

import time

from app.approvals.channels import ChannelFanout
from app.approvals.decisions import decide
from app.approvals.ledger import Ledger
from app.approvals.signals import Notifier, PostgresNotifier, asyncpg_dsn
from app.audit import AuditLog
from app.demo.upstream import DemoMarket
from app.store import tokens as token_store
from app.store.db import Database
from tests.conftest import StartAirlock
from tests.harness import DEFAULT_POLICY, AirlockUnderTest
from tests.inbox.conftest import APPROVED, held_call, inbox_of, live_feed, sign_in, web_client
from tests.net import wait_for


async def test_a_parked_call_and_its_decision_through_the_api_arrive_on_the_feed(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with web_client(airlock) as client:
        csrf = await sign_in(client, airlock)
        async with live_feed(client, since=time.time()) as feed, held_call(airlock, market) as (call, approval):
            parked = await feed.until(approval["id"], "pending")
            await airlock.decide(approval["id"], "approve", reviewer="bob")
            decided = await feed.until(approval["id"], *APPROVED)
            await call
    assert parked["pending"] is True
    assert ">Approve</button>" in parked["html"] and f'value="{csrf}"' in parked["html"]
    assert parked["message"] == "New approval: agent-1 wants to call em_cancel_task on execution-market."
    assert decided["pending"] is False and ">Approve</button>" not in decided["html"]
    assert "Approved by bob via the API" in decided["html"]


async def test_a_decision_made_by_another_process_arrives_on_the_feed(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    """As `airlock approvals approve` does it: its own engine and notifier, nothing shared in memory."""
    db = Database(airlock.settings.database_url)
    notifier = PostgresNotifier(asyncpg_dsn(db.url), schema=db.schema) if db.is_postgres else Notifier()
    other_process = Ledger(db, notifier, ChannelFanout([]), AuditLog(db))
    try:
        async with web_client(airlock) as client:
            await sign_in(client, airlock)
            await airlock.reviewer_token("carol")
            async with live_feed(client, since=time.time()) as feed, held_call(airlock, market) as (call, approval):
                await feed.until(approval["id"], "pending")
                await decide(other_process, approval["id"], reviewer="carol", verdict="approve", via="cli")
                decided = await feed.until(approval["id"], *APPROVED)
                await call
    finally:
        await db.dispose()
    assert "Approved by carol via the CLI" in decided["html"]


async def test_expiry_arrives_on_the_feed(start_airlock: StartAirlock, market: DemoMarket) -> None:
    policy = {**DEFAULT_POLICY, "rules": [{"tool": "em_cancel_task", "action": "approve", "timeout": 1}]}
    airlock = await start_airlock(policy=policy)
    async with web_client(airlock) as client:
        await sign_in(client, airlock)
        async with live_feed(client, since=time.time()) as feed, held_call(airlock, market) as (_call, approval):
            expired = await feed.until(approval["id"], "expired")
    assert "Expired at" in expired["html"] and "nobody decided in time" in expired["html"]


async def test_a_page_that_connects_late_is_sent_what_changed_since_it_was_rendered(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with web_client(airlock) as client:
        await sign_in(client, airlock)
        rendered_at = time.time()
        async with held_call(airlock, market) as (call, approval):
            await airlock.decide(approval["id"], "reject", reviewer="bob", reason="not now")
            await call
        async with live_feed(client, since=rendered_at) as feed:
            replayed = await feed.until(approval["id"], "rejected")
    assert "Rejected by bob" in replayed["html"] and "not now" in replayed["html"]


async def test_a_page_too_old_to_catch_up_is_told_to_reload(airlock: AirlockUnderTest) -> None:
    async with web_client(airlock) as client:
        await sign_in(client, airlock)
        async with live_feed(client, since=time.time() - 3600) as feed:
            assert await feed.next("reload") == {}


async def test_the_feed_drops_its_listener_when_the_browser_goes_away(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    feed_state = inbox_of(airlock).feed
    listeners_before = len(airlock.runtime.notifier._listeners)  # no public count: this is the leak to rule out
    async with web_client(airlock) as client:
        await sign_in(client, airlock)
        async with live_feed(client, since=time.time()) as feed, held_call(airlock, market) as (_call, approval):
            await feed.until(approval["id"], "pending")
            assert feed_state.subscribers == 1
            assert len(airlock.runtime.notifier._listeners) == listeners_before + 1
    await wait_for(lambda: feed_state.subscribers == 0, timeout=5)
    assert len(airlock.runtime.notifier._listeners) == listeners_before


async def test_the_feed_needs_a_session_and_ends_when_the_reviewer_is_disabled(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with web_client(airlock) as client:
        anonymous = await client.get("/inbox/-/events")
        await sign_in(client, airlock)
        async with live_feed(client, since=time.time()) as feed:
            async with airlock.runtime.db.write() as conn:
                await token_store.disable_reviewer(conn, name="alice", now=time.time())
            async with held_call(airlock, market):
                assert await feed.next("signed-out") == {}
    assert anonymous.status_code == 401
