"""Deciding from Slack: Approve and Reject buttons, the reason modal, and every way a click is refused.

Provenance: Airlock-defined behaviour (issue: Slack approvals), with the real `slack_sdk` client
talking to a fake Slack Web API on loopback, interaction requests signed as Slack signs them, the
official `mcp` client holding the call, and the demo upstream counting executions.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from app.demo.fake_slack import FakeSlack, Reply
from app.demo.upstream import DemoMarket
from app.store import tokens
from tests.harness import DEFAULT_POLICY, AirlockUnderTest, new_task
from tests.net import wait_for
from tests.slack.conftest import (
    ALICE,
    BOB,
    CHANNEL,
    MALLORY,
    TEAM_ID,
    Posted,
    StartSlackAirlock,
    approval_row,
    click_payload,
    ephemeral_texts,
    form_body,
    has_buttons,
    interact,
    pending_approval,
    posted,
    reason_payload,
    shows,
    signed_headers,
    text_of,
)


@asynccontextmanager
async def held_call(
    airlock: AirlockUnderTest, market: DemoMarket, *, agent: str = "agent-1"
) -> AsyncIterator[tuple[asyncio.Task[Any], Posted]]:
    """An agent's `em_cancel_task` call held for approval, and its approval once the message is posted."""
    task = new_task(market)
    async with airlock.client(agent) as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "<!channel>"}))
        approval = await pending_approval(airlock)
        row = await posted(airlock, approval["id"])
        try:
            yield call, row
        finally:
            if not call.done():
                call.cancel()
            await asyncio.gather(call, return_exceptions=True)


async def still_pending(airlock: AirlockUnderTest, row: Posted) -> bool:
    current = await approval_row(airlock, row.id)
    return current.status == "pending" and current.decided_by is None


async def test_approve_click_runs_the_held_call_once_and_the_message_shows_who_approved_and_the_result(
    slack_airlock: AirlockUnderTest, slack: FakeSlack, market: DemoMarket
) -> None:
    async with held_call(slack_airlock, market) as (call, row):
        assert row.channel == CHANNEL
        first = slack.message(row.channel, row.ts)
        assert has_buttons(first) and first["text"]
        response = await interact(slack_airlock, click_payload(row, "approve", user=ALICE))
        assert response.status_code == 200
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error, text_of(result)
    assert market.calls["em_cancel_task"] == 1
    decided = await approval_row(slack_airlock, row.id)
    assert (decided.decided_by, decided.decided_via) == ("alice", "slack")
    message = await shows(slack, row, "It ran and succeeded")
    assert not has_buttons(message)
    assert "Approved* by alice via Slack" in json.dumps(message["blocks"])
    assert all(call.body["ts"] == row.ts for call in slack.calls_to("chat.update"))
    assert len(slack.calls_to("chat.postMessage")) == 1


async def test_reject_opens_a_reason_modal_and_its_submission_rejects_the_call_with_that_reason(
    slack_airlock: AirlockUnderTest, slack: FakeSlack, market: DemoMarket
) -> None:
    async with held_call(slack_airlock, market) as (call, row):
        click = await interact(slack_airlock, click_payload(row, "reject", user=BOB, trigger_id="42.42.trigger"))
        assert click.status_code == 200
        [opened] = slack.calls_to("views.open")
        assert opened.body["trigger_id"] == "42.42.trigger"
        assert opened.body["view"]["callback_id"] == "airlock_reject_reason"
        assert json.loads(opened.body["view"]["private_metadata"])["approval"] == row.id
        assert await still_pending(slack_airlock, row), "clicking Reject only asks for a reason"
        submitted = await interact(slack_airlock, reason_payload(row.id, "the task is still needed", user=BOB))
        assert submitted.status_code == 200 and submitted.content == b""
        async with asyncio.timeout(10):
            result = await call
    assert result.is_error
    assert "bob" in text_of(result) and "the task is still needed" in text_of(result)
    assert market.calls["em_cancel_task"] == 0
    message = await shows(slack, row, "Rejected")
    assert not has_buttons(message)
    assert "the task is still needed" in json.dumps(message["blocks"])


async def test_an_empty_reason_keeps_the_modal_open_and_the_call_pending(
    slack_airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with held_call(slack_airlock, market) as (_call, row):
        response = await interact(slack_airlock, reason_payload(row.id, "   ", user=BOB))
        assert response.status_code == 200
        assert response.json()["response_action"] == "errors"
        assert "airlock_reason" in response.json()["errors"]
        assert await still_pending(slack_airlock, row)


async def test_cancelling_the_reason_modal_leaves_the_call_pending_and_it_can_still_be_approved(
    slack_airlock: AirlockUnderTest, slack: FakeSlack, market: DemoMarket
) -> None:
    async with held_call(slack_airlock, market) as (call, row):
        await interact(slack_airlock, click_payload(row, "reject", user=BOB))
        closed = {
            "type": "view_closed",
            "api_app_id": "A0AIRLOCK",
            "team": {"id": TEAM_ID},
            "user": {"id": BOB, "team_id": TEAM_ID},
            "view": {"callback_id": "airlock_reject_reason"},
        }
        assert (await interact(slack_airlock, closed)).status_code == 200
        assert await still_pending(slack_airlock, row)
        await interact(slack_airlock, click_payload(row, "approve", user=ALICE))
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error
    assert market.calls["em_cancel_task"] == 1


async def test_a_second_click_on_a_decided_call_gets_a_private_already_approved_note_and_changes_nothing(
    slack_airlock: AirlockUnderTest, slack: FakeSlack, market: DemoMarket
) -> None:
    async with held_call(slack_airlock, market) as (call, row):
        await interact(slack_airlock, click_payload(row, "approve", user=ALICE))
        async with asyncio.timeout(10):
            await call
        again = await interact(slack_airlock, click_payload(row, "approve", user=ALICE))
        reject = await interact(slack_airlock, click_payload(row, "reject", user=BOB))
    assert again.status_code == 200 and reject.status_code == 200
    await wait_for(lambda: len(slack.calls_to("chat.postEphemeral")) == 2)
    assert "already approved by alice" in ephemeral_texts(slack, ALICE)[0]
    assert "already approved by alice" in ephemeral_texts(slack, BOB)[0]
    assert slack.calls_to("views.open") == [], "no reason form for a call that is already decided"
    assert market.calls["em_cancel_task"] == 1
    assert (await approval_row(slack_airlock, row.id)).decided_by == "alice"


async def test_two_reviewers_clicking_at_once_decide_once_and_the_loser_is_told_who_won(
    slack_airlock: AirlockUnderTest, slack: FakeSlack, market: DemoMarket
) -> None:
    async with held_call(slack_airlock, market) as (call, row):
        answers = await asyncio.gather(
            interact(slack_airlock, click_payload(row, "approve", user=ALICE)),
            interact(slack_airlock, reason_payload(row.id, "no", user=BOB)),
        )
        async with asyncio.timeout(10):
            result = await call
    decided = await approval_row(slack_airlock, row.id)
    assert all(answer.status_code == 200 for answer in answers)
    if decided.decided_by == "alice":
        assert not result.is_error and market.calls["em_cancel_task"] == 1
        assert "already approved by alice" in answers[1].json()["errors"]["airlock_reason"]
    else:
        assert decided.decided_by == "bob" and result.is_error and market.calls["em_cancel_task"] == 0
        await wait_for(lambda: len(ephemeral_texts(slack, ALICE)) == 1)
        assert "already rejected by bob" in ephemeral_texts(slack, ALICE)[0]


async def test_an_approve_click_from_someone_who_is_not_a_reviewer_changes_nothing_and_explains_why(
    slack_airlock: AirlockUnderTest, slack: FakeSlack, market: DemoMarket
) -> None:
    async with held_call(slack_airlock, market) as (_call, row):
        approve = await interact(slack_airlock, click_payload(row, "approve", user=MALLORY))
        reject = await interact(slack_airlock, click_payload(row, "reject", user=MALLORY))
        assert approve.status_code == 200 and reject.status_code == 200
        await wait_for(lambda: len(ephemeral_texts(slack, MALLORY)) == 2)
        assert await still_pending(slack_airlock, row)
    assert "not an Airlock reviewer" in ephemeral_texts(slack, MALLORY)[0]
    assert f"--slack-user {MALLORY}" in ephemeral_texts(slack, MALLORY)[0]
    assert slack.calls_to("views.open") == []
    assert market.calls["em_cancel_task"] == 0


async def test_a_reviewer_disabled_after_being_mapped_by_slack_reviewers_decides_nothing_by_click(
    slack_airlock: AirlockUnderTest, slack: FakeSlack, market: DemoMarket
) -> None:
    """Issue 10, class 4: the decision path checks the reviewer's state, so the env mapping cannot bypass it."""
    async with slack_airlock.runtime.db.write() as conn:
        assert await tokens.disable_reviewer(conn, name="bob", now=time.time())
    async with held_call(slack_airlock, market) as (_call, row):
        approve = await interact(slack_airlock, click_payload(row, "approve", user=BOB))
        reject = await interact(slack_airlock, click_payload(row, "reject", user=BOB))
        submitted = await interact(slack_airlock, reason_payload(row.id, "no", user=BOB))
        assert approve.status_code == 200 and reject.status_code == 200
        await wait_for(lambda: len(ephemeral_texts(slack, BOB)) == 2)
        assert await still_pending(slack_airlock, row)
    assert all(
        text.startswith("Reviewer bob is disabled and cannot decide; an admin can run")
        for text in ephemeral_texts(slack, BOB)
    )
    assert "bob is disabled" in submitted.json()["errors"]["airlock_reason"]
    assert slack.calls_to("views.open") == []
    assert market.calls["em_cancel_task"] == 0


def routed_policy(**slack: Any) -> dict[str, Any]:
    rules = [{"id": "cancel", "tool": "em_cancel_task", "action": "approve", "reason": "irreversible", "slack": slack}]
    return {**DEFAULT_POLICY, "rules": rules}


async def test_a_rule_naming_slack_users_and_user_groups_lets_only_them_decide(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, market: DemoMarket
) -> None:
    slack.usergroups["S0ONCALL"] = [BOB]
    airlock = await start_slack_airlock(
        policy=routed_policy(users=[ALICE], usergroups=["S0ONCALL"]),
        env={"SLACK_REVIEWERS": f"{BOB}=bob,U0CAROL=carol"},
    )
    async with held_call(airlock, market) as (call, row):
        message = slack.message(row.channel, row.ts)
        assert f"<@{ALICE}>" in json.dumps(message["blocks"]) and "<!subteam^S0ONCALL>" in json.dumps(message["blocks"])
        refused = await interact(airlock, click_payload(row, "approve", user="U0CAROL"))
        assert refused.status_code == 200
        await wait_for(lambda: len(ephemeral_texts(slack, "U0CAROL")) == 1)
        assert "names other Slack reviewers" in ephemeral_texts(slack, "U0CAROL")[0]
        assert await still_pending(airlock, row)
        await interact(airlock, click_payload(row, "reject", user=BOB))
        await interact(airlock, click_payload(row, "reject", user=BOB))
        assert len(slack.calls_to("views.open")) == 2, "bob is in the rule's user group"
        assert len(slack.calls_to("usergroups.users.list")) == 1, "group members are cached"
        await interact(airlock, click_payload(row, "approve", user=ALICE))
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error


async def test_a_failed_user_group_lookup_refuses_the_click(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, market: DemoMarket
) -> None:
    slack.script("usergroups.users.list", Reply.error("plan_upgrade_required"))
    airlock = await start_slack_airlock(policy=routed_policy(usergroups=["S0ONCALL"]))
    async with held_call(airlock, market) as (_call, row):
        await interact(airlock, click_payload(row, "approve", user=BOB))
        await wait_for(lambda: len(ephemeral_texts(slack, BOB)) == 1)
        assert await still_pending(airlock, row)
    assert "could not check your Slack user-group membership" in ephemeral_texts(slack, BOB)[0]


async def test_the_rules_reviewer_list_and_self_approval_are_enforced_by_the_decision_path(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, market: DemoMarket
) -> None:
    policy = {**DEFAULT_POLICY, "rules": [{"tool": "em_cancel_task", "action": "approve", "reviewers": ["alice"]}]}
    airlock = await start_slack_airlock(policy=policy)
    async with held_call(airlock, market, agent="alice") as (_call, row):
        await interact(airlock, click_payload(row, "approve", user=ALICE))
        await interact(airlock, click_payload(row, "approve", user=BOB))
        await wait_for(lambda: len(slack.calls_to("chat.postEphemeral")) == 2)
        assert await still_pending(airlock, row)
    assert "cannot approve" in ephemeral_texts(slack, ALICE)[0]
    assert "lets only alice decide" in ephemeral_texts(slack, BOB)[0]
    assert market.calls["em_cancel_task"] == 0


@pytest.mark.parametrize(
    "origin",
    [
        {"team": "T0OTHER", "user_team": "T0OTHER"},
        {"team": TEAM_ID, "user_team": "T0GUEST"},
        {"team": None, "user_team": "T0OTHER"},
        {"app_id": "A0SOMEONEELSE"},
    ],
    ids=["foreign-workspace", "slack-connect-guest", "org-install-foreign-user", "other-app"],
)
async def test_a_click_from_another_workspace_or_app_is_refused_and_changes_nothing(
    slack_airlock: AirlockUnderTest, slack: FakeSlack, market: DemoMarket, origin: dict[str, Any]
) -> None:
    async with held_call(slack_airlock, market) as (_call, row):
        response = await interact(slack_airlock, click_payload(row, "approve", user=ALICE, **origin))
        reject = await interact(slack_airlock, click_payload(row, "reject", user=ALICE, **origin))
        submit = await interact(slack_airlock, reason_payload(row.id, "no", user=ALICE, **origin))
        assert response.status_code == 200 and reject.status_code == 200
        assert submit.json()["response_action"] == "errors"
        await wait_for(lambda: len(ephemeral_texts(slack, ALICE)) == 2)
        assert await still_pending(slack_airlock, row)
    assert slack.calls_to("views.open") == []
    assert market.calls["em_cancel_task"] == 0


@pytest.mark.parametrize("elsewhere", [{"channel": "C0ELSEWHERE"}, {"ts": "1.000001"}], ids=["channel", "message"])
async def test_a_button_replayed_from_another_message_is_refused(
    slack_airlock: AirlockUnderTest, slack: FakeSlack, market: DemoMarket, elsewhere: dict[str, str]
) -> None:
    async with held_call(slack_airlock, market) as (_call, row):
        response = await interact(slack_airlock, click_payload(row, "approve", user=ALICE, **elsewhere))
        assert response.status_code == 200
        await wait_for(lambda: len(slack.calls_to("chat.postEphemeral")) == 1)
        assert await still_pending(slack_airlock, row)
    assert "not on the message Airlock posted" in str(slack.calls_to("chat.postEphemeral")[0].body["text"])


def _tampered(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body.replace(b"approve", b"reject"), signed_headers(body)


@pytest.mark.parametrize(
    "make",
    [
        lambda body: (body, signed_headers(body, secret="not-the-signing-secret")),
        # A minute past Slack's five-minute window each way: int() truncation and the request's own
        # travel time must not carry a "future" timestamp back inside it.
        lambda body: (body, signed_headers(body, timestamp=int(time.time()) - 360)),
        lambda body: (body, signed_headers(body, timestamp=int(time.time()) + 360)),
        lambda body: (body, {"Content-Type": "application/x-www-form-urlencoded"}),
        lambda body: (body, {**signed_headers(body), "X-Slack-Signature": "v0=deadbeef"}),
        lambda body: (body, {**signed_headers(body), "X-Slack-Request-Timestamp": "yesterday"}),
        lambda body: (body, {k: v for k, v in signed_headers(body).items() if k != "X-Slack-Signature"}),
        _tampered,
    ],
    ids=[
        "wrong-secret",
        "stale",
        "future",
        "missing",
        "malformed",
        "non-numeric-timestamp",
        "no-signature",
        "tampered-body",
    ],
)
async def test_an_interaction_without_a_valid_fresh_signature_gets_401_and_changes_nothing(
    slack_airlock: AirlockUnderTest, slack: FakeSlack, market: DemoMarket, make: Any
) -> None:
    async with held_call(slack_airlock, market) as (_call, row):
        body, headers = make(form_body(click_payload(row, "approve", user=ALICE)))
        response = await interact_raw(slack_airlock, body, headers)
        assert response.status_code == 401
        assert await still_pending(slack_airlock, row)
    assert [call.method for call in slack.calls] == ["chat.postMessage"]


async def interact_raw(airlock: AirlockUnderTest, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=airlock.url, timeout=10) as http:
        return await http.post("/slack/interactions", content=body, headers=headers)


async def test_a_body_larger_than_any_interaction_is_refused_unread(slack_airlock: AirlockUnderTest) -> None:
    body = b"payload=" + b"x" * 300_000
    response = await interact_raw(slack_airlock, body, signed_headers(body))
    assert response.status_code == 413


async def test_a_signed_body_without_a_payload_is_a_bad_request(slack_airlock: AirlockUnderTest) -> None:
    body = b"command=%2Fapprove&text=everything"
    response = await interact_raw(slack_airlock, body, signed_headers(body))
    assert response.status_code == 400


async def test_when_slack_cannot_open_the_reason_modal_the_reviewer_is_told_and_the_call_stays_pending(
    slack_airlock: AirlockUnderTest, slack: FakeSlack, market: DemoMarket
) -> None:
    slack.script("views.open", Reply.error("expired_trigger_id"))
    async with held_call(slack_airlock, market) as (_call, row):
        response = await interact(slack_airlock, click_payload(row, "reject", user=BOB))
        assert response.status_code == 200
        await wait_for(lambda: len(ephemeral_texts(slack, BOB)) == 1)
        assert await still_pending(slack_airlock, row)
    assert "did not open the reason form" in ephemeral_texts(slack, BOB)[0]


async def test_a_hanging_views_open_is_cut_short_so_slack_gets_its_answer_within_three_seconds(
    slack_airlock: AirlockUnderTest, slack: FakeSlack, market: DemoMarket
) -> None:
    slack.script("views.open", Reply.hanging())
    async with held_call(slack_airlock, market) as (_call, row):
        started = time.monotonic()
        response = await interact(slack_airlock, click_payload(row, "reject", user=BOB))
        assert response.status_code == 200
        assert time.monotonic() - started < 3
        assert await still_pending(slack_airlock, row)


async def test_a_quorum_click_that_is_not_the_last_is_confirmed_privately_and_the_call_waits_for_the_next(
    slack_airlock: AirlockUnderTest, slack: FakeSlack, market: DemoMarket
) -> None:
    """Issue 18, item 2: alice's click counts once however often she clicks; bob's second approval runs it."""
    slack_airlock.set_policy(
        {**DEFAULT_POLICY, "rules": [{"tool": "em_cancel_task", "action": "approve", "approvals": 2}]}
    )
    async with held_call(slack_airlock, market) as (call, row):
        await interact(slack_airlock, click_payload(row, "approve", user=ALICE))
        await wait_for(lambda: len(ephemeral_texts(slack, ALICE)) == 1)
        assert ephemeral_texts(slack, ALICE)[0].endswith(
            ": 1 of 2 approvals, by alice; it runs when 1 more reviewer approves."
        )
        await interact(slack_airlock, click_payload(row, "approve", user=ALICE))
        await wait_for(lambda: len(ephemeral_texts(slack, ALICE)) == 2)
        assert "1 of 2 approvals, by alice;" in ephemeral_texts(slack, ALICE)[1]
        assert has_buttons(await shows(slack, row, "1 of 2 approvals, by alice"))
        assert market.calls.get("em_cancel_task", 0) == 0
        await interact(slack_airlock, click_payload(row, "approve", user=BOB))
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error and market.calls["em_cancel_task"] == 1
    assert (await approval_row(slack_airlock, row.id)).votes == '["alice", "bob"]'
    assert not has_buttons(await shows(slack, row, "2 of 2 approvals, by alice and bob"))


async def test_with_reviewers_by_email_a_slack_user_is_the_reviewer_their_profile_email_names(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, market: DemoMarket
) -> None:
    """The reviewer single sign-on to the inbox names by e-mail decides from Slack without a link."""
    slack.emails["U0DANA"] = "dana@example.com"
    slack.emails["U0ERIN"] = "erin@example.com"  # no reviewer has that name
    airlock = await start_slack_airlock(slack_table={"reviewers_by_email": True})
    await airlock.reviewer_token("dana@example.com")
    async with held_call(airlock, market) as (call, row):
        await interact(airlock, click_payload(row, "approve", user="U0ERIN"))
        await wait_for(lambda: len(ephemeral_texts(slack, "U0ERIN")) == 1)
        assert "not an Airlock reviewer" in ephemeral_texts(slack, "U0ERIN")[0]
        assert await still_pending(airlock, row)
        await interact(airlock, click_payload(row, "approve", user="U0DANA"))
        async with asyncio.timeout(10):
            assert not (await call).is_error
    assert (await airlock.approval(row.id))["decided_by"] == "dana@example.com"
    assert market.calls["em_cancel_task"] == 1


async def test_without_reviewers_by_email_profiles_are_never_read(
    slack_airlock: AirlockUnderTest, slack: FakeSlack, market: DemoMarket
) -> None:
    slack.emails["U0DANA"] = "dana@example.com"
    await slack_airlock.reviewer_token("dana@example.com")
    async with held_call(slack_airlock, market) as (_call, row):
        await interact(slack_airlock, click_payload(row, "approve", user="U0DANA"))
        await wait_for(lambda: len(ephemeral_texts(slack, "U0DANA")) == 1)
        assert await still_pending(slack_airlock, row)
    assert slack.calls_to("users.info") == []


async def test_a_failed_profile_lookup_refuses_the_click(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, market: DemoMarket
) -> None:
    slack.script("users.info", Reply.error("missing_scope"))
    airlock = await start_slack_airlock(slack_table={"reviewers_by_email": True})
    async with held_call(airlock, market) as (_call, row):
        await interact(airlock, click_payload(row, "approve", user="U0DANA"))
        await wait_for(lambda: len(ephemeral_texts(slack, "U0DANA")) == 1)
        assert await still_pending(airlock, row)
    assert "could not look up your Slack profile" in ephemeral_texts(slack, "U0DANA")[0]
