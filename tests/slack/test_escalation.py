"""Escalation in Slack: the target's channel gets one notice, and the approval's message says so.

Provenance: Airlock-defined (issue 18 item 3; docs/slack.md, "Escalation"). The real Airlock over
uvicorn, the real `slack_sdk` client against the fake Slack on loopback, and the demo upstream
counting executions. The rule escalates after a fraction of a second of real time: the sweeper
wakes for the escalation's deadline, and the test waits (bounded) for what Slack receives. The
once-only and timing rules themselves are tested in virtual time (`tests/approvals/unit/`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

from app.approvals.escalation import EVENT
from app.config import EscalationTarget
from app.demo.fake_slack import FakeSlack
from app.demo.upstream import DemoMarket
from tests.harness import DEFAULT_POLICY, new_task, running_airlock, settings_for_test
from tests.net import wait_for
from tests.slack.conftest import ALICE, click_payload, interact, link_alice, pending_approval, posted, shows, slack_env
from tests.slack.conftest import with_slack as slack_settings
from tests.slack.test_outbox import caught_up

ONCALL = "C0SREONCALL"
POLICY = {
    **DEFAULT_POLICY,
    "rules": [
        {"tool": "em_cancel_task", "action": "approve", "timeout": 60, "escalate_after": 0.3, "escalate_to": "oncall"}
    ],
}


def notices(slack: FakeSlack) -> list[dict[str, object]]:
    return [call.body for call in slack.calls_to("chat.postMessage") if call.body["channel"] == ONCALL]


async def test_an_undecided_approval_is_announced_once_in_the_escalation_channel_and_its_message_says_so(
    tmp_path: Path, upstream_url: str, database_url: str, slack: FakeSlack, market: DemoMarket
) -> None:
    settings = slack_settings(
        settings_for_test(tmp_path, upstream_url, database_url, policy=POLICY), tmp_path, slack_env(slack)
    )
    settings = dataclasses.replace(settings, escalation={"oncall": EscalationTarget("oncall", slack_channel=ONCALL)})
    async with running_airlock(settings) as airlock:
        await link_alice(airlock)
        task = new_task(market)
        async with airlock.client() as client:
            call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
            approval = await pending_approval(airlock)
            message = await posted(airlock, approval["id"])
            await wait_for(lambda: len(notices(slack)) == 1, timeout=10)
            [notice] = notices(slack)
            assert approval["id"] in json.dumps(notice) and f"/inbox/{approval['id']}" in json.dumps(notice)
            await shows(slack, message, f"Escalated to {ONCALL} after")

            await caught_up(airlock)
            assert len(notices(slack)) == 1, "escalated once, announced once"
            assert (await interact(airlock, click_payload(message, "approve", user=ALICE))).status_code == 200
            async with asyncio.timeout(10):
                result = await call
        assert not result.is_error
        assert market.calls["em_cancel_task"] == 1
        timeline = await airlock.runtime.approvals.timeline(approval["id"])
        assert [step.event for step in timeline].count(EVENT) == 1
