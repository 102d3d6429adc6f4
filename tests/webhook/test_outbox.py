"""Approval events reach the receiver signed, in order, once per event, whatever the receiver does.

Provenance: Airlock-defined behaviour (issue 18, item 5: "signed (HMAC, timestamped) JSON to a
configured URL on park and on every status change"), with a real Airlock in front of the demo
upstream and a real HTTP receiver on loopback that can be down, fail or rate-limit.
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.demo.upstream import DemoMarket
from app.store import webhook_outbox as outbox_store
from tests.harness import AirlockUnderTest, new_task
from tests.net import wait_for
from tests.webhook.conftest import StartWebhookAirlock, verifies
from tests.webhook.receiver import Answer, Receiver

FULL_PATH = ["approval.parked", "approval.approved", "approval.executing", "approval.completed"]


async def held_call(airlock: AirlockUnderTest, market: DemoMarket, client: Any) -> tuple[asyncio.Task[Any], str]:
    """Start an `em_cancel_task` call (the policy parks it); return the held call and its approval id."""
    task = new_task(market)
    call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "duplicate"}))
    approval = await airlock.wait_pending()
    return call, str(approval["id"])


def types(hook: Receiver, approval_id: str) -> list[str]:
    return [event["type"] for event in hook.events(approval_id)]


async def test_the_receiver_gets_a_signed_event_on_park_and_on_every_status_change_in_order(
    start_webhook_airlock: StartWebhookAirlock, receiver: Receiver, market: DemoMarket
) -> None:
    airlock = await start_webhook_airlock(receiver)
    async with airlock.client() as client:
        call, approval_id = await held_call(airlock, market, client)
        await receiver.wait_until(lambda _: types(receiver, approval_id) == FULL_PATH[:1])
        parked = receiver.events(approval_id)[0]["approval"]
        assert (await airlock.decide(approval_id, "approve")).status_code == 200
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error
    await receiver.wait_until(lambda _: types(receiver, approval_id) == FULL_PATH)
    assert all(verifies(delivery) for delivery in receiver.deliveries)
    assert {d.headers["Airlock-Delivery-Attempt"] for d in receiver.deliveries} == {"1"}
    assert len({d.event_id for d in receiver.deliveries}) == 4
    events = receiver.events(approval_id)
    assert [event["sequence"] for event in events] == [1, 2, 3, 4]
    assert [event["id"] for event in events] == [d.event_id for d in receiver.deliveries]
    assert parked["status"] == "pending" and parked["decided_by"] is None
    assert parked["tool"] == "em_cancel_task" and parked["agent"] == "agent-1"
    assert parked["upstream"] == "execution-market"
    assert parked["arguments"]["reason"] == "duplicate", "arguments as parsed JSON"
    assert parked["policy"]["reason"] == "cancelling is irreversible"
    assert parked["review_url"] == f"{airlock.settings.public_url}/inbox/{approval_id}"
    assert parked["outcome"]["title"] == "Approval needed"
    assert parked["created_at"].endswith("Z") and parked["expires_at"].endswith("Z")
    approved, completed = events[1]["approval"], events[3]["approval"]
    assert (approved["status"], approved["decided_by"], approved["decided_via"]) == ("approved", "alice", "api")
    assert completed["outcome"]["kind"] == "succeeded"
    assert "Approved by alice via the API" in completed["outcome"]["summary"]


async def test_a_receiver_that_is_down_gets_each_event_once_it_is_back(
    start_webhook_airlock: StartWebhookAirlock, down_receiver: Receiver, market: DemoMarket
) -> None:
    airlock = await start_webhook_airlock(down_receiver)
    async with airlock.client() as client:
        call, approval_id = await held_call(airlock, market, client)

        async def retried() -> bool:
            async with airlock.runtime.db.read() as conn:
                rows = await outbox_store.for_approval(conn, approval_id)
            return bool(rows) and rows[0].attempts >= 2 and "Cannot connect" in (rows[0].last_error or "")

        await wait_for(retried, timeout=10)
        assert (await airlock.decide(approval_id, "reject", reason="not today")).status_code == 200
        async with asyncio.timeout(10):
            result = await call
    assert result.is_error, "the agent is told at once: the receiver being down holds up nothing"
    await down_receiver.start()
    await down_receiver.wait_until(
        lambda _: types(down_receiver, approval_id) == ["approval.parked", "approval.rejected"]
    )
    first = down_receiver.deliveries[0]
    assert int(first.headers["Airlock-Delivery-Attempt"]) >= 3 and verifies(first)
    assert len(down_receiver.deliveries) == 2, "each event delivered once, after the retries that failed"

    async def recorded() -> bool:
        async with airlock.runtime.db.read() as conn:
            rows = await outbox_store.for_approval(conn, approval_id)
        return [(row.settled, row.delivered_at is not None) for row in rows] == [(True, True), (True, True)]

    await wait_for(recorded, timeout=10)


async def test_a_failed_event_is_retried_with_the_same_id_and_body_and_a_later_one_never_overtakes_it(
    start_webhook_airlock: StartWebhookAirlock, receiver: Receiver, market: DemoMarket
) -> None:
    receiver.script(Answer(503), Answer(500))
    airlock = await start_webhook_airlock(receiver)
    async with airlock.client() as client:
        call, approval_id = await held_call(airlock, market, client)
        assert (await airlock.decide(approval_id, "reject", reason="no")).status_code == 200
        async with asyncio.timeout(10):
            await call
    await receiver.wait_until(lambda _: len(types(receiver, approval_id)) == 2)
    ids = [d.event_id for d in receiver.deliveries]
    assert ids[0] == ids[1] == ids[2] != ids[3], "parked three times (503, 500, 200), then rejected"
    assert receiver.deliveries[0].body == receiver.deliveries[2].body
    assert [d.headers["Airlock-Delivery-Attempt"] for d in receiver.deliveries] == ["1", "2", "3", "1"]
    assert types(receiver, approval_id) == ["approval.parked", "approval.rejected"]


async def test_a_429_is_retried_only_after_its_retry_after(
    start_webhook_airlock: StartWebhookAirlock, receiver: Receiver, market: DemoMarket
) -> None:
    receiver.script(Answer(429, {"Retry-After": "1"}))
    airlock = await start_webhook_airlock(receiver)
    async with airlock.client() as client:
        call, approval_id = await held_call(airlock, market, client)
        await receiver.wait_until(lambda _: types(receiver, approval_id) == ["approval.parked"])
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
    first, second = receiver.deliveries[:2]
    assert first.event_id == second.event_id
    assert second.at - first.at >= 0.95, "Retry-After: 1 was honoured (the normal backoff here is 50 ms)"


async def test_an_event_the_receiver_keeps_refusing_is_given_up_after_the_bound_with_its_last_error_kept(
    start_webhook_airlock: StartWebhookAirlock, receiver: Receiver, market: DemoMarket
) -> None:
    receiver.script(*[Answer(500)] * 1000)
    airlock = await start_webhook_airlock(receiver, webhook_table={"give_up_after_seconds": 0.5})
    async with airlock.client() as client:
        call, approval_id = await held_call(airlock, market, client)

        async def gave_up() -> bool:
            async with airlock.runtime.db.read() as conn:
                rows = await outbox_store.for_approval(conn, approval_id)
            return bool(rows) and rows[0].settled and rows[0].delivered_at is None

        await wait_for(gave_up, timeout=10)
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
    async with airlock.runtime.db.read() as conn:
        [row, *_] = await outbox_store.for_approval(conn, approval_id)
    assert row.last_error == "HTTP 500"


async def test_only_the_configured_events_are_sent(
    start_webhook_airlock: StartWebhookAirlock, receiver: Receiver, market: DemoMarket
) -> None:
    airlock = await start_webhook_airlock(receiver, webhook_table={"events": ["approved", "completed"]})
    async with airlock.client() as client:
        call, approval_id = await held_call(airlock, market, client)
        assert (await airlock.decide(approval_id, "approve")).status_code == 200
        async with asyncio.timeout(10):
            await call
    await receiver.wait_until(lambda _: len(types(receiver, approval_id)) == 2)
    assert types(receiver, approval_id) == ["approval.approved", "approval.completed"]
    assert [event["sequence"] for event in receiver.events(approval_id)] == [2, 4]
