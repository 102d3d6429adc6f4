"""Escalation through the webhook: `approval.escalated` reaches the receiver once, before the decision.

Provenance: Airlock-defined (issue 18 item 3; docs/webhook.md, "Events"). A real Airlock over
uvicorn in front of the demo upstream, and a real HTTP receiver on loopback. The rule escalates
after a fraction of a second of real time (the sweeper wakes for that deadline); the once-only
and timing rules themselves are tested in virtual time (`tests/approvals/unit/`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from app.config import EscalationTarget, WebhookSettings
from app.demo.upstream import DemoMarket
from app.store import webhook_outbox as store
from app.webhook.outbox import Outbox
from tests.approvals.unit.conftest import Lifecycle, lifecycle
from tests.approvals.unit.test_escalation import TEN_MINUTES, park
from tests.harness import DEFAULT_POLICY, running_airlock, settings_for_test
from tests.net import wait_for
from tests.webhook.conftest import outbox_of, verifies, with_webhook
from tests.webhook.receiver import Receiver
from tests.webhook.test_outbox import FULL_PATH, held_call, types

__all__ = ["lifecycle"]  # the approvals lifecycle fixture, on this test's database

POLICY = {
    **DEFAULT_POLICY,
    "rules": [
        {"tool": "em_cancel_task", "action": "approve", "timeout": 60, "escalate_after": 0.3, "escalate_to": "pager"}
    ],
}


async def test_the_receiver_hears_of_the_escalation_once_and_before_the_decision(
    tmp_path: Path, upstream_url: str, database_url: str, receiver: Receiver, market: DemoMarket
) -> None:
    settings = with_webhook(
        settings_for_test(tmp_path, upstream_url, database_url, policy=POLICY), tmp_path, receiver.url
    )
    settings = dataclasses.replace(settings, escalation={"pager": EscalationTarget("pager", webhook=True)})
    async with running_airlock(settings) as airlock:
        await airlock.reviewer_token("alice")
        async with airlock.client() as client:
            call, approval_id = await held_call(airlock, market, client)
            await receiver.wait_until(lambda _: "approval.escalated" in types(receiver, approval_id))
            outbox = outbox_of(airlock)
            passes = outbox.passes
            await wait_for(lambda: outbox.passes >= passes + 2, timeout=10)
            assert (await airlock.decide(approval_id, "approve")).status_code == 200
            async with asyncio.timeout(10):
                result = await call
        assert not result.is_error
        await receiver.wait_until(lambda _: FULL_PATH[-1] in types(receiver, approval_id))

    assert types(receiver, approval_id) == [FULL_PATH[0], "approval.escalated", *FULL_PATH[1:]]
    assert all(verifies(delivery) for delivery in receiver.deliveries)
    escalated = receiver.events(approval_id)[1]
    assert escalated["sequence"] == 0
    assert escalated["approval"]["status"] == "pending"
    assert escalated["approval"]["escalation"]["to"] == "pager"
    assert escalated["approval"]["escalation"]["summary"].startswith("Escalated to pager after ")
    assert receiver.events(approval_id)[-1]["approval"]["escalation"]["to"] == "pager", "later events keep it"


async def test_the_escalation_event_is_written_once_and_never_for_an_approval_already_decided(
    lifecycle: Lifecycle,
) -> None:
    settings = WebhookSettings(url="https://hooks.example/", secret="s" * 32)
    outbox = Outbox(lifecycle.db, settings, "https://airlock.test", escalation_targets=frozenset({"sre-oncall"}))
    first, late = await park(lifecycle), await park(lifecycle, task="task-2")
    lifecycle.clock.advance(TEN_MINUTES)
    await lifecycle.approvals.sweep()
    await lifecycle.approve(late)

    assert await outbox.write(first) == 2 and await outbox.write(first) == 0
    await lifecycle.approve(first)
    await outbox.write(first)
    await outbox.write(late)
    async with lifecycle.db.read() as conn:
        written = {approval_id: await store.for_approval(conn, approval_id) for approval_id in (first, late)}
    assert [row.event for row in written[first]] == ["escalated", "parked", "approved"]
    assert [row.event for row in written[late]] == ["parked", "approved"], "decided first: nobody is paged"
