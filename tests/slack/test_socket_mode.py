"""Deciding from Slack over Socket Mode: the same buttons and reason modal, with no public URL.

Provenance: Airlock-defined behaviour (issue 18, item 1) over Slack's Socket Mode protocol
(`apps.connections.open`, hello, envelopes and acks, `disconnect`), with the real `slack_sdk`
`SocketModeClient` connecting to the fake Slack's WebSocket on loopback, the official `mcp` client
holding the call, and the demo upstream counting executions.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import httpx
import pytest

from app.demo.fake_slack import FakeSlack, Reply
from app.demo.fake_socket_mode import APP_TOKEN, FakeSocketMode
from app.demo.upstream import DemoMarket
from app.slack import SlackExtension
from app.slack.socket_mode import SocketMode
from tests.harness import AirlockUnderTest
from tests.net import wait_for
from tests.slack.conftest import (
    BOB,
    MALLORY,
    StartSlackAirlock,
    approval_row,
    click_payload,
    ephemeral_texts,
    reason_payload,
    text_of,
)
from tests.slack.test_interactions import held_call

ACK_DEADLINE = 3.0
"""Slack shows the clicker an error when an envelope is not acknowledged within 3 seconds."""


def socket_env(app_token: str = APP_TOKEN) -> dict[str, str]:
    return {"SLACK_MODE": "socket", "AIRLOCK_SLACK_APP_TOKEN": app_token, "SLACK_SIGNING_SECRET": ""}


def socket_mode_of(airlock: AirlockUnderTest) -> SocketMode:
    [extension] = [e for e in airlock.runtime.extensions if e.name == "slack"]
    socket_mode = cast(SlackExtension, extension).socket_mode
    assert socket_mode is not None
    return socket_mode


async def start_socket_airlock(
    start: StartSlackAirlock, slack: FakeSlack, *, connections: int = 1, **table: Any
) -> AirlockUnderTest:
    airlock = await start(env=socket_env(), slack_table={"socket_connections": connections, **table})
    async with asyncio.timeout(5):
        await socket_mode_of(airlock).connected.wait()
    await slack.socket_mode.wait_until(lambda: len(slack.socket_mode.connections) == connections)
    return airlock


@pytest.fixture
def sockets(slack: FakeSlack) -> FakeSocketMode:
    return slack.socket_mode


async def acked_promptly(sockets: FakeSocketMode, envelope_id: str) -> dict[str, Any] | None:
    """Wait for the envelope's ack; it must come within Slack's 3 seconds. Returns its payload."""
    ack = await sockets.ack(envelope_id)
    assert ack.at - sockets.sent[envelope_id] < ACK_DEADLINE
    return ack.payload


async def test_an_approve_click_over_socket_mode_is_acked_and_the_held_agent_gets_its_result(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, sockets: FakeSocketMode, market: DemoMarket
) -> None:
    airlock = await start_socket_airlock(start_slack_airlock, slack)
    async with held_call(airlock, market) as (call, row):
        envelope = await sockets.send(click_payload(row, "approve"))
        assert await acked_promptly(sockets, envelope) is None
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error, text_of(result)
    assert market.calls["em_cancel_task"] == 1
    decided = await approval_row(airlock, row.id)
    assert (decided.decided_by, decided.decided_via) == ("alice", "slack")
    assert not slack.calls_to("chat.postEphemeral")


async def test_reject_opens_the_modal_and_its_submission_rejects_with_the_reason_and_an_empty_one_is_refused_in_the_ack(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, sockets: FakeSocketMode, market: DemoMarket
) -> None:
    airlock = await start_socket_airlock(start_slack_airlock, slack)
    async with held_call(airlock, market) as (call, row):
        click = await sockets.send(click_payload(row, "reject", user=BOB, trigger_id="7.7.socket-trigger"))
        assert await acked_promptly(sockets, click) is None
        await wait_for(lambda: bool(slack.calls_to("views.open")))
        [opened] = slack.calls_to("views.open")
        assert opened.body["trigger_id"] == "7.7.socket-trigger"

        empty = await sockets.send(reason_payload(row.id, "  ", user=BOB))
        refused = await acked_promptly(sockets, empty)
        assert refused is not None and refused["response_action"] == "errors"
        assert (await approval_row(airlock, row.id)).status == "pending"

        submitted = await sockets.send(reason_payload(row.id, "the task is still needed", user=BOB))
        assert await acked_promptly(sockets, submitted) is None
        async with asyncio.timeout(10):
            result = await call
    assert result.is_error
    assert "bob" in text_of(result) and "the task is still needed" in text_of(result)
    assert market.calls["em_cancel_task"] == 0


@pytest.mark.parametrize("how", ["refresh_requested", "link_disabled", "dropped"])
async def test_after_slack_ends_the_connection_the_client_reconnects_and_the_next_click_works(
    how: str,
    start_slack_airlock: StartSlackAirlock,
    slack: FakeSlack,
    sockets: FakeSocketMode,
    market: DemoMarket,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    airlock = await start_socket_airlock(start_slack_airlock, slack)
    [first] = sockets.connections
    if how == "dropped":
        await sockets.drop()
    else:
        await sockets.disconnect(how)
    await sockets.wait_until(lambda: sockets.opened == 2 and len(sockets.connections) == 1)
    assert sockets.connections != [first]
    async with held_call(airlock, market) as (call, row):
        envelope = await sockets.send(click_payload(row, "approve"))
        assert await acked_promptly(sockets, envelope) is None
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error, text_of(result)
    assert APP_TOKEN not in caplog.text, "the app-level token must never be logged"


async def test_a_connection_whose_url_is_refused_starts_over_with_a_new_url_and_the_next_click_works(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, sockets: FakeSocketMode, market: DemoMarket
) -> None:
    airlock = await start_socket_airlock(start_slack_airlock, slack, socket_ping_seconds=0.2)
    sockets.refuse_next = 1
    await sockets.drop()
    await sockets.wait_until(lambda: sockets.opened == 3 and len(sockets.connections) == 1)
    async with held_call(airlock, market) as (call, row):
        envelope = await sockets.send(click_payload(row, "approve"))
        assert await acked_promptly(sockets, envelope) is None
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error, text_of(result)


async def test_an_envelope_delivered_twice_decides_once_and_sends_no_note(
    start_slack_airlock: StartSlackAirlock,
    slack: FakeSlack,
    sockets: FakeSocketMode,
    market: DemoMarket,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="airlock.slack")
    airlock = await start_socket_airlock(start_slack_airlock, slack, connections=2)
    one, two = sockets.connections
    async with held_call(airlock, market) as (call, row):
        payload = click_payload(row, "approve")
        envelope = await sockets.send(payload, connection=one)
        await sockets.send(payload, envelope_id=envelope, connection=two)
        await sockets.wait_until(lambda: len(sockets.acks_of(envelope)) == 2)
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error, text_of(result)
    assert market.calls["em_cancel_task"] == 1
    assert f"ignored a repeated Slack envelope {envelope}" in caplog.text
    assert not slack.calls_to("chat.postEphemeral"), "a repeat must not tell the clicker it was already decided"


async def test_a_refused_click_delivered_twice_gets_one_note(
    start_slack_airlock: StartSlackAirlock,
    slack: FakeSlack,
    sockets: FakeSocketMode,
    market: DemoMarket,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="airlock.slack")
    airlock = await start_socket_airlock(start_slack_airlock, slack)
    async with held_call(airlock, market) as (_call, row):
        envelope = await sockets.send(click_payload(row, "approve", user=MALLORY))
        await sockets.ack(envelope)
        await wait_for(lambda: bool(ephemeral_texts(slack, MALLORY)))
        await sockets.send(click_payload(row, "approve", user=MALLORY), envelope_id=envelope)
        await sockets.wait_until(lambda: len(sockets.acks_of(envelope)) == 2)
        assert (await approval_row(airlock, row.id)).status == "pending"
    assert len(ephemeral_texts(slack, MALLORY)) == 1
    assert f"ignored a repeated Slack envelope {envelope}" in caplog.text


async def test_a_wrong_app_token_is_one_clear_error_not_a_retry_loop_and_airlock_keeps_serving(
    start_slack_airlock: StartSlackAirlock,
    slack: FakeSlack,
    sockets: FakeSocketMode,
    market: DemoMarket,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "xapp-1-A0AIRLOCK-1-revoked"
    airlock = await start_slack_airlock(env=socket_env(wrong), slack_table={"socket_connections": 1})
    async with asyncio.timeout(5):
        await socket_mode_of(airlock).refused.wait()
    assert (sockets.refused, sockets.opened, sockets.connections) == (1, 0, [])
    [error] = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("airlock.slack")]
    assert "Slack refused the app-level token (invalid_auth)" in error.getMessage()
    assert "AIRLOCK_SLACK_APP_TOKEN" in error.getMessage()
    assert wrong not in caplog.text
    async with held_call(airlock, market) as (_call, row):
        assert row.channel, "the outbox still posts the message over the Web API"
    assert len(slack.calls_to("apps.connections.open")) == 1


async def test_slack_failing_at_start_is_retried_and_then_the_connection_opens(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, sockets: FakeSocketMode, caplog: pytest.LogCaptureFixture
) -> None:
    slack.script("apps.connections.open", Reply.server_error(503), Reply.ratelimited(0))
    await start_socket_airlock(start_slack_airlock, slack)
    assert len(slack.calls_to("apps.connections.open")) == 3 and sockets.opened == 1
    retried = [r.getMessage() for r in caplog.records if r.name == "airlock.slack"]
    assert [m for m in retried if "retrying" in m] == [
        "could not open a Slack Socket Mode connection (Slack answered HTTP 503); retrying",
        "could not open a Slack Socket Mode connection (Slack answered HTTP 429 (ratelimited)); retrying",
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_envelopes_other_than_interactions_and_unreadable_ones_are_acked_and_ignored(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack, sockets: FakeSocketMode
) -> None:
    await start_socket_airlock(start_slack_airlock, slack)
    event = await sockets.send({"type": "event_callback", "event": {"type": "app_mention"}}, kind="events_api")
    nobody = await sockets.send({"type": "block_actions", "actions": []})
    unreadable = {"type": "view_submission", "view": {"callback_id": "airlock_reject_reason", "private_metadata": "?"}}
    garbled = await sockets.send(unreadable)
    for envelope in (event, nobody, garbled):
        assert await acked_promptly(sockets, envelope) is None
    assert not slack.calls_to("chat.postEphemeral") and not slack.calls_to("views.open")


async def test_socket_mode_serves_no_interactions_endpoint(
    start_slack_airlock: StartSlackAirlock, slack: FakeSlack
) -> None:
    airlock = await start_socket_airlock(start_slack_airlock, slack)
    async with httpx.AsyncClient(base_url=airlock.url) as http:
        assert (await http.post("/slack/interactions", content=b"payload={}")).status_code == 404
