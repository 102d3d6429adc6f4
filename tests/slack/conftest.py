"""Slack test fixtures: a fake Slack Web API, Airlock configured to use it, and signed interactions.

Settings are built the way `tests.harness.settings_for_test` builds them, plus the `[slack]` table
and the Slack environment variables parsed by the real `settings_from_document` (secrets come only
from the environment). Interaction requests are signed exactly as Slack signs them:
`v0=` + HMAC-SHA256 of `v0:{timestamp}:{raw body}` with the signing secret.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from app.config import Settings, settings_from_document
from app.demo.fake_slack import BOT_TOKEN, FakeSlack
from app.store import slack_outbox as outbox_store
from app.store import tokens
from app.store.approvals import ApprovalRow
from tests.harness import SECRET_KEY, AirlockUnderTest, running_airlock, settings_for_test
from tests.net import wait_for

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
APP_ID = "A0AIRLOCK"
TEAM_ID = "T0HOME"
CHANNEL = "C0APPROVALS"
ALICE = "U0ALICE"
"""Linked in the reviewers table (`airlock reviewers add alice --slack-user U0ALICE`)."""
BOB = "U0BOB"
"""Mapped in the environment (`SLACK_REVIEWERS=U0BOB=bob`) to bob, a reviewer added without a Slack link."""
MALLORY = "U0MALLORY"
"""A member of the workspace who is no Airlock reviewer."""

FAST_SLACK: dict[str, Any] = {
    "retry_initial_seconds": 0.05,
    "retry_max_seconds": 0.2,
    "poll_seconds": 0.2,
    "api_timeout_seconds": 1,
    "click_timeout_seconds": 1,
    "lease_seconds": 5,
}


def slack_env(fake: FakeSlack, **extra: str) -> dict[str, str]:
    return {
        "AIRLOCK_SECRET_KEY": SECRET_KEY,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_APP_ID": APP_ID,
        "SLACK_TEAM_IDS": TEAM_ID,
        "SLACK_DEFAULT_CHANNEL": CHANNEL,
        "SLACK_API_URL": fake.api_url,
        "SLACK_REVIEWERS": f"{BOB}=bob",
        **extra,
    }


def with_slack(
    settings: Settings, tmp_path: Path, env: dict[str, str], table: dict[str, Any] | None = None
) -> Settings:
    """`settings` with the `[slack]` table and Slack environment parsed as Airlock parses them."""
    parsed = settings_from_document(
        {"slack": {**FAST_SLACK, **(table or {})}}, base_dir=tmp_path, env=env, require_upstreams=False
    )
    return dataclasses.replace(settings, slack=parsed.slack)


StartSlackAirlock = Callable[..., Awaitable[AirlockUnderTest]]


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack().serving() as fake:
        yield fake


@pytest.fixture
async def start_slack_airlock(
    tmp_path: Path, upstream_url: str, database_url: str, slack: FakeSlack
) -> AsyncIterator[StartSlackAirlock]:
    """`await start_slack_airlock(policy=..., slack_table={...}, env={...}, enabled=True)`.

    Every Airlock started shares the test's database; alice is a linked reviewer in it, bob an
    unlinked one that `SLACK_REVIEWERS` maps his Slack user to.
    """
    async with AsyncExitStack() as stack:

        async def start(
            *,
            slack_table: dict[str, Any] | None = None,
            env: dict[str, str] | None = None,
            enabled: bool = True,
            **overrides: Any,
        ) -> AirlockUnderTest:
            settings = settings_for_test(tmp_path, upstream_url, database_url, **overrides)
            if enabled:
                settings = with_slack(settings, tmp_path, slack_env(slack, **(env or {})), slack_table)
            airlock = await stack.enter_async_context(running_airlock(settings))
            await link_alice(airlock)
            return airlock

        yield start


@pytest.fixture
async def slack_airlock(start_slack_airlock: StartSlackAirlock) -> AirlockUnderTest:
    return await start_slack_airlock()


async def link_alice(airlock: AirlockUnderTest) -> None:
    """Make alice a reviewer linked to her Slack user, and bob one without a link (once per database)."""
    for name, user in (("alice", ALICE), ("bob", None)):
        async with airlock.runtime.db.read() as conn:
            if await tokens.reviewer_named(conn, name) is not None:
                continue
        await airlock.reviewer_token(name, slack_user_id=user)


async def approval_row(airlock: AirlockUnderTest, approval_id: str) -> ApprovalRow:
    row = await airlock.runtime.ledger.get(approval_id)
    assert row is not None
    return row


@dataclasses.dataclass(frozen=True, slots=True)
class Posted:
    """An approval's posted Slack message: the approval's id, and the channel and ts Airlock stored."""

    id: str
    channel: str
    ts: str


async def posted(airlock: AirlockUnderTest, approval_id: str, *, timeout: float = 10) -> Posted:
    """Wait until the approval's Slack message was posted (its channel and ts are stored)."""
    found: list[Posted] = []

    async def stored() -> bool:
        async with airlock.runtime.db.read() as conn:
            message = await outbox_store.message(conn, approval_id)
        found[:] = [] if message is None else [Posted(approval_id, *message)]
        return bool(found)

    await wait_for(stored, timeout=timeout)
    return found[0]


async def shows(fake: FakeSlack, message: Posted, text: str, *, timeout: float = 10) -> dict[str, Any]:
    """Wait until the posted `message` contains `text` in its blocks; return the message body."""
    key = (message.channel, message.ts)
    await wait_for(lambda: key in fake.messages and text in json.dumps(fake.messages[key]["blocks"]), timeout=timeout)
    return fake.messages[key]


def has_buttons(message: dict[str, Any]) -> bool:
    return any(block["type"] == "actions" for block in message["blocks"])


def click_payload(
    row: Posted,
    action: str,
    *,
    user: str = ALICE,
    team: str | None = TEAM_ID,
    user_team: str = TEAM_ID,
    app_id: str = APP_ID,
    channel: str | None = None,
    ts: str | None = None,
    trigger_id: str = "111.222.trigger",
) -> dict[str, Any]:
    """A `block_actions` payload for a click on the approval's message, shaped like Slack's."""
    channel = channel or row.channel
    ts = ts or row.ts
    return {
        "type": "block_actions",
        "api_app_id": app_id,
        "token": "legacy-verification-token",
        "user": {"id": user, "username": "alice", "name": "alice", "team_id": user_team},
        "team": None if team is None else {"id": team, "domain": "home"},
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
        "channel": {"id": channel, "name": "approvals"},
        "trigger_id": trigger_id,
        "response_url": "https://hooks.slack.invalid/actions/T0HOME/1/x",
        "message": {"type": "message", "ts": ts},
        "actions": [
            {
                "action_id": f"airlock_{action}",
                "block_id": f"decide:{row.id}:pending",
                "value": row.id,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def reason_payload(
    approval_id: str,
    reason: str,
    *,
    user: str = ALICE,
    team: str | None = TEAM_ID,
    user_team: str = TEAM_ID,
    app_id: str = APP_ID,
    channel: str = CHANNEL,
) -> dict[str, Any]:
    """A `view_submission` of the reject modal, carrying back the metadata Airlock set."""
    return {
        "type": "view_submission",
        "api_app_id": app_id,
        "team": None if team is None else {"id": team},
        "user": {"id": user, "username": "someone", "name": "someone", "team_id": user_team},
        "view": {
            "id": "V0001",
            "team_id": team,
            "type": "modal",
            "callback_id": "airlock_reject_reason",
            "private_metadata": json.dumps({"approval": approval_id, "channel": channel}),
            "state": {"values": {"airlock_reason": {"reason": {"type": "plain_text_input", "value": reason}}}},
        },
    }


def form_body(payload: dict[str, Any]) -> bytes:
    return ("payload=" + quote(json.dumps(payload))).encode()


def signed_headers(body: bytes, *, timestamp: int | str | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


async def interact(
    airlock: AirlockUnderTest, payload: dict[str, Any], *, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST a signed interaction, as Slack would."""
    body = form_body(payload)
    async with httpx.AsyncClient(base_url=airlock.url, timeout=10) as http:
        return await http.post(
            "/slack/interactions", content=body, headers=signed_headers(body) if headers is None else headers
        )


def ephemeral_texts(fake: FakeSlack, user: str) -> list[str]:
    return [str(call.body.get("text")) for call in fake.calls_to("chat.postEphemeral") if call.body.get("user") == user]


async def pending_approval(airlock: AirlockUnderTest, *, count: int = 1) -> dict[str, Any]:
    """Wait until `count` approvals are pending; return the newest (as the API shows it)."""
    return await airlock.wait_pending(count=count)


def text_of(result: Any) -> str:
    return " ".join(item.text for item in result.content if getattr(item, "type", "") == "text")
