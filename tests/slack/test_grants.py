"""Approving from Slack with a grant: where the rule offers grants, the message has an
approve-with-grant button (identical calls, the rule's longest grant) that approves and grants in
one click; elsewhere there is no such button, and a forged click grants nothing.

Provenance: Airlock-defined (issue 18, item 4). The real `slack_sdk` client against a fake Slack
Web API on loopback, interaction requests signed as Slack signs them, the official `mcp` client
holding the call, the demo upstream counting executions.
"""

from __future__ import annotations

import asyncio
import json

from app.demo.fake_slack import FakeSlack
from app.demo.upstream import DemoMarket
from app.slack.blocks import APPROVE_GRANT_ACTION
from tests.approvals.test_grants import LARGE, granting_policy
from tests.net import wait_for
from tests.slack.conftest import ALICE, StartSlackAirlock, click_payload, ephemeral_texts, interact, posted


async def test_the_grant_button_approves_and_lets_the_identical_call_run_at_once(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, market: DemoMarket
) -> None:
    airlock = await start_slack_airlock(policy=granting_policy(max_minutes=60))
    async with airlock.client() as client:
        call = asyncio.create_task(client.call_tool("em_publish_task", LARGE))
        row = await posted(airlock, (await airlock.wait_pending())["id"])
        blocks = json.dumps(slack.message(row.channel, row.ts)["blocks"])
        clicked = await interact(airlock, click_payload(row, "approve_grant", user=ALICE))
        async with asyncio.timeout(10):
            assert not (await call).is_error
            assert not (await client.call_tool("em_publish_task", LARGE)).is_error
    assert APPROVE_GRANT_ACTION in blocks and "Approve + identical calls for 60 min" in blocks
    assert clicked.status_code == 200
    grant = await airlock.runtime.approvals.grants.of_approval(row.id)
    assert grant is not None and grant.scope == "identical" and grant.created_by == "alice"
    assert grant.expires_at - grant.created_at == 3600
    assert market.calls["em_publish_task"] == 2


async def test_without_grants_on_the_rule_there_is_no_grant_button_and_a_forged_click_grants_nothing(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, market: DemoMarket
) -> None:
    airlock = await start_slack_airlock(policy=granting_policy())
    async with airlock.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": "t-1", "reason": "duplicate"}))
        row = await posted(airlock, (await airlock.wait_pending())["id"])
        blocks = json.dumps(slack.message(row.channel, row.ts)["blocks"])
        forged = await interact(airlock, click_payload(row, "approve_grant", user=ALICE))
        status = (await airlock.approval(row.id))["status"]
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
    assert APPROVE_GRANT_ACTION not in blocks
    assert forged.status_code == 200 and status == "pending"
    await wait_for(lambda: len(ephemeral_texts(slack, ALICE)) == 1)
    assert "offers no grants" in ephemeral_texts(slack, ALICE)[0]
    assert await airlock.runtime.approvals.grants.live() == []
