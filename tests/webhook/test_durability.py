"""Webhook events survive restarts and reach the receiver whichever process made the change.

Provenance: Airlock-defined behaviour (issue 18, item 5: a durable outbox that "survives
restarts"), with Airlock processes started and stopped one after another on one database, and a
second Airlock without the webhook deciding, as a replica or the CLI would.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.demo.upstream import DemoMarket
from app.store import webhook_outbox as outbox_store
from tests.harness import new_task, running_airlock, settings_for_test
from tests.net import wait_for
from tests.webhook.conftest import StartWebhookAirlock, send_decision, verifies, with_webhook
from tests.webhook.receiver import Receiver


async def test_events_written_before_a_restart_are_delivered_after_it(
    tmp_path: Path, upstream_url: str, database_url: str, down_receiver: Receiver, market: DemoMarket
) -> None:
    settings = with_webhook(settings_for_test(tmp_path, upstream_url, database_url), tmp_path, down_receiver.url)
    task = new_task(market)
    async with running_airlock(settings) as first:
        async with first.client() as client:
            call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
            approval_id = str((await first.wait_pending())["id"])

            async def written() -> bool:
                async with first.runtime.db.read() as conn:
                    rows = await outbox_store.for_approval(conn, approval_id)
                return len(rows) == 1 and rows[0].attempts >= 1 and not rows[0].settled

            await wait_for(written, timeout=10)
            call.cancel()
            await asyncio.gather(call, return_exceptions=True)
    assert down_receiver.deliveries == [], "the receiver was down the whole time"
    await down_receiver.start()
    async with running_airlock(settings):
        await down_receiver.wait_until(lambda _: len(down_receiver.events(approval_id)) >= 1)
    parked = down_receiver.deliveries[0]
    assert parked.event["type"] == "approval.parked" and verifies(parked)
    assert int(parked.headers["Airlock-Delivery-Attempt"]) >= 2


async def test_a_decision_made_by_a_process_without_the_webhook_is_still_announced(
    start_webhook_airlock: StartWebhookAirlock,
    receiver: Receiver,
    market: DemoMarket,
    tmp_path: Path,
    upstream_url: str,
    database_url: str,
) -> None:
    airlock = await start_webhook_airlock(receiver)
    async with running_airlock(settings_for_test(tmp_path, upstream_url, database_url)) as plain:
        assert plain.runtime.settings.webhook is None
        task = new_task(market)
        async with plain.client() as client:
            call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
            approval_id = str((await plain.wait_pending())["id"])
            response = await plain.decide(approval_id, "reject", reviewer="carol", reason="no")
            assert response.status_code == 200
            async with asyncio.timeout(10):
                await call
    await receiver.wait_until(lambda _: len(receiver.events(approval_id)) == 2)
    assert [e["type"] for e in receiver.events(approval_id)] == ["approval.parked", "approval.rejected"]
    assert airlock.runtime.settings.webhook is not None


async def test_replicas_sharing_a_database_send_each_event_once(
    start_webhook_airlock: StartWebhookAirlock, receiver: Receiver, market: DemoMarket
) -> None:
    first = await start_webhook_airlock(receiver)
    second = await start_webhook_airlock(receiver)
    task = new_task(market)
    async with first.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval_id = str((await first.wait_pending())["id"])
        decision = {"approval_id": approval_id, "decision": "approve", "reviewer": "bob"}
        assert (await send_decision(second, decision)).status_code == 200
        async with asyncio.timeout(10):
            await call
    await receiver.wait_until(lambda _: len(receiver.events(approval_id)) == 4)
    assert len(receiver.deliveries) == 4, "every replica heard of every change; each event went once"
    assert [e["sequence"] for e in receiver.events(approval_id)] == [1, 2, 3, 4]
