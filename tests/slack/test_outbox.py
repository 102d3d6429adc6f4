"""The message follows the truth, and Slack trouble never loses or blocks an approval.

Provenance: Airlock-defined behaviour (issue: Slack approvals, "the message follows the truth" and
"Slack trouble never loses or blocks an approval"), with the real `slack_sdk` client against a
fake Slack Web API that can fail, rate-limit or hang, several Airlock apps sharing one database
(as replicas, or one process after another across a restart), and the demo upstream counting
executions.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from app.approvals.outcomes import APPROVAL_META_KEY
from app.demo.fake_slack import FakeSlack, Reply
from app.demo.upstream import DemoMarket
from app.slack import SlackExtension
from app.store import slack_outbox as outbox_store
from tests.harness import DEFAULT_POLICY, AirlockUnderTest, new_task, running_airlock, settings_for_test
from tests.net import wait_for
from tests.slack.conftest import (
    ALICE,
    StartSlackAirlock,
    click_payload,
    has_buttons,
    interact,
    link_alice,
    pending_approval,
    posted,
    shows,
    slack_env,
    text_of,
    with_slack,
)


def outbox_of(airlock: AirlockUnderTest) -> Any:
    extension = next(e for e in airlock.runtime.extensions if isinstance(e, SlackExtension))
    return extension.outbox


async def caught_up(*airlocks: AirlockUnderTest, passes: int = 2) -> None:
    """Wait until every airlock's outbox has completed `passes` more passes."""
    targets = [(outbox_of(a), outbox_of(a).passes + passes) for a in airlocks]
    await wait_for(lambda: all(outbox.passes >= target for outbox, target in targets), timeout=10)


@pytest.mark.parametrize(
    "trouble", [Reply.server_error(503), Reply.error("internal_error"), Reply.hanging()], ids=["5xx", "not-ok", "hang"]
)
async def test_slack_being_down_never_delays_the_call_and_the_message_catches_up_when_slack_is_back(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, market: DemoMarket, trouble: Reply
) -> None:
    # A long Slack timeout: were the approval waiting on Slack, it would take 30 s, not under 15.
    airlock = await start_slack_airlock(slack_table={"api_timeout_seconds": 30, "lease_seconds": 60})
    slack.fail_all(trouble)
    task = new_task(market)
    async with airlock.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval = await pending_approval(airlock)
        await wait_for(lambda: len(slack.calls_to("chat.postMessage")) >= 1, timeout=10)
        decided_at = time.monotonic()
        assert (await airlock.decide(approval["id"], "approve")).status_code == 200
        async with asyncio.timeout(10):
            result = await call
        assert time.monotonic() - decided_at < 15, "the approval is not held up by Slack"
    assert not result.is_error, text_of(result)
    assert market.calls["em_cancel_task"] == 1
    async with airlock.runtime.db.read() as conn:
        queued = await outbox_store.get(conn, approval["id"])
    assert queued is not None and queued.rendered_status is None, "nothing reached Slack yet"
    slack.recover()
    row = await posted(airlock, approval["id"])
    message = await shows(slack, row, "It ran and succeeded")
    assert not has_buttons(message)


async def test_failed_slack_calls_are_retried_with_exponential_backoff_and_the_error_is_kept(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, market: DemoMarket
) -> None:
    airlock = await start_slack_airlock(slack_table={"retry_initial_seconds": 0.5, "retry_max_seconds": 5})
    slack.script("chat.postMessage", Reply.error("not_in_channel"), Reply.error("not_in_channel"))
    task = new_task(market)
    async with airlock.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval = await pending_approval(airlock)

        async def failed_twice() -> bool:
            async with airlock.runtime.db.read() as conn:
                queued = await outbox_store.get(conn, approval["id"])
            return queued is not None and queued.attempts == 2 and "not_in_channel" in (queued.last_error or "")

        await wait_for(failed_twice, timeout=10)
        row = await posted(airlock, approval["id"])
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
    first, second, third = slack.calls_to("chat.postMessage")
    assert second.at - first.at >= 0.45 and third.at - second.at >= 0.95, "0.5 s, then 1 s"
    assert has_buttons(slack.message(row.channel, row.ts))


async def test_a_429_is_retried_only_after_its_retry_after(
    slack_airlock: AirlockUnderTest, slack: FakeSlack, market: DemoMarket
) -> None:
    slack.script("chat.postMessage", Reply.ratelimited(1))
    task = new_task(market)
    async with slack_airlock.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval = await pending_approval(slack_airlock)
        row = await posted(slack_airlock, approval["id"])
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
    first, second = slack.calls_to("chat.postMessage")
    assert second.at - first.at >= 0.95, "Retry-After: 1 was honoured (the normal backoff here is 50 ms)"
    assert has_buttons(slack.message(row.channel, row.ts))


async def test_the_message_follows_a_decision_made_by_another_process(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, market: DemoMarket
) -> None:
    with_buttons = await start_slack_airlock()
    elsewhere = await start_slack_airlock(enabled=False)
    task = new_task(market)
    async with with_buttons.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval = await pending_approval(with_buttons)
        row = await posted(with_buttons, approval["id"])
        response = await elsewhere.decide(approval["id"], "reject", reviewer="carol", reason="not today")
        assert response.status_code == 200
        async with asyncio.timeout(10):
            await call
    message = await shows(slack, row, "Rejected")
    assert "carol" in str(message["blocks"]) and "not today" in str(message["blocks"])
    assert "via the API" in str(message["blocks"])
    assert not has_buttons(message)


async def test_the_message_shows_when_a_call_expired_unanswered(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, market: DemoMarket
) -> None:
    policy = {**DEFAULT_POLICY, "rules": [{"tool": "em_cancel_task", "action": "approve", "timeout": 1}]}
    airlock = await start_slack_airlock(policy=policy)
    task = new_task(market)
    async with airlock.client() as client:
        async with asyncio.timeout(10):
            result = await client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"})
    assert result.meta is not None
    approval_id = result.meta[APPROVAL_META_KEY]["id"]
    row = await posted(airlock, approval_id)
    message = await shows(slack, row, "Expired")
    assert not has_buttons(message)
    clicked = await interact(airlock, click_payload(row, "approve", user=ALICE))
    assert clicked.status_code == 200
    await wait_for(lambda: len(slack.calls_to("chat.postEphemeral")) == 1)
    assert "expired" in str(slack.calls_to("chat.postEphemeral")[0].body["text"])
    assert market.calls["em_cancel_task"] == 0


async def test_replicas_sharing_a_database_post_each_message_once_and_update_it_once_per_change(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, market: DemoMarket
) -> None:
    replicas = [await start_slack_airlock() for _ in range(3)]
    task = new_task(market)
    async with replicas[0].client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval = await pending_approval(replicas[0])
        row = await posted(replicas[0], approval["id"])
        await caught_up(*replicas)
        assert len(slack.calls_to("chat.postMessage")) == 1
        assert (await replicas[2].decide(approval["id"], "reject", reviewer="carol", reason="no")).status_code == 200
        async with asyncio.timeout(10):
            await call
    await shows(slack, row, "Rejected")
    await caught_up(*replicas)
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert len(slack.calls_to("chat.update")) == 1


async def test_a_pending_approval_whose_message_was_never_queued_is_announced_by_the_reconcile_pass(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, market: DemoMarket
) -> None:
    with_buttons = await start_slack_airlock()
    without = await start_slack_airlock(enabled=False)
    task = new_task(market)
    async with without.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval = await pending_approval(without)
        row = await posted(with_buttons, approval["id"])
        assert has_buttons(slack.message(row.channel, row.ts))
        await interact(with_buttons, click_payload(row, "approve", user=ALICE))
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error
    assert market.calls["em_cancel_task"] == 1


async def test_a_click_after_a_restart_is_resolved_from_the_database(
    tmp_path: Path, upstream_url: str, database_url: str, slack: FakeSlack, market: DemoMarket
) -> None:
    def settings() -> Any:
        base = settings_for_test(tmp_path, upstream_url, database_url, approvals={"hold_seconds": 1})
        return with_slack(base, tmp_path, slack_env(slack))

    task = new_task(market)
    arguments = {"task_id": task.id, "reason": "x"}
    async with running_airlock(settings()) as before:
        await link_alice(before)
        async with before.client() as client:
            async with asyncio.timeout(10):
                first = await client.call_tool("em_cancel_task", arguments)
        assert first.meta is not None
        approval_id = first.meta[APPROVAL_META_KEY]["id"]
        row = await posted(before, approval_id)
        agent_token = await before.agent_token()
    async with running_airlock(settings()) as after:
        after.tokens["agent-1"] = agent_token
        response = await interact(after, click_payload(row, "approve", user=ALICE))
        assert response.status_code == 200
        await wait_for(lambda: market.calls["em_cancel_task"] == 1, timeout=10)
        async with after.client() as client:
            async with asyncio.timeout(10):
                retry = await client.call_tool("em_cancel_task", arguments)
        message = await shows(slack, await posted(after, approval_id), "It ran and succeeded")
    assert not retry.is_error, text_of(retry)
    assert market.calls["em_cancel_task"] == 1
    assert not has_buttons(message)
    assert len(slack.calls_to("chat.postMessage")) == 1


async def test_a_message_deleted_in_slack_is_given_up_on_without_affecting_the_approval(
    slack_airlock: AirlockUnderTest, slack: FakeSlack, market: DemoMarket
) -> None:
    task = new_task(market)
    async with slack_airlock.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval = await pending_approval(slack_airlock)
        row = await posted(slack_airlock, approval["id"])
        slack.messages.clear()
        await slack_airlock.decide(approval["id"], "approve")
        async with asyncio.timeout(10):
            result = await call

    async def settled() -> bool:
        async with slack_airlock.runtime.db.read() as conn:
            queued = await outbox_store.get(conn, row.id)
        return queued is not None and queued.settled and "message_not_found" in (queued.last_error or "")

    await wait_for(settled, timeout=10)
    assert not result.is_error
    assert len(slack.calls_to("chat.update")) == 1


async def test_each_quorum_vote_updates_the_message_which_keeps_its_buttons_until_the_last_one(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, market: DemoMarket
) -> None:
    """Issue 18, item 2: the message shows "1 of 2 approvals, by alice" after the first vote."""
    policy = {**DEFAULT_POLICY, "rules": [{"tool": "em_cancel_task", "action": "approve", "approvals": 2}]}
    airlock = await start_slack_airlock(policy=policy)
    async with airlock.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": new_task(market).id, "reason": "x"}))
        approval = await pending_approval(airlock)
        row = await posted(airlock, approval["id"])
        assert (await airlock.decide(approval["id"], "approve", reviewer="carol")).json()["status"] == "pending"
        message = await shows(slack, row, "1 of 2 approvals, by carol")
        assert has_buttons(message) and "Waiting" in str(message["blocks"])
        assert (await airlock.decide(approval["id"], "approve", reviewer="dave")).json()["status"] == "approved"
        async with asyncio.timeout(10):
            await call
    done = await shows(slack, row, "2 of 2 approvals, by carol and dave")
    assert not has_buttons(done) and market.calls["em_cancel_task"] == 1
