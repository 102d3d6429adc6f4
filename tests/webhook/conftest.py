"""Webhook test fixtures: a receiver on loopback, Airlock configured to send to it, signed decisions.

Settings are built the way `tests.harness.settings_for_test` builds them, plus the `[webhook]`
table and secret parsed by the real `settings_from_document`. Signatures are computed here from the
algorithm `docs/webhook.md` documents (HMAC-SHA256 of `"{t}." + body`), not with Airlock's own
signing module, so the tests check the documented scheme.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings, settings_from_document
from app.store import tokens
from app.webhook import WebhookExtension
from tests.harness import SECRET_KEY, AirlockUnderTest, running_airlock, settings_for_test
from tests.webhook.receiver import Delivery, Receiver

SECRET = "whsec-test-0123456789abcdefghijklmnopqrstuvwxyz"

FAST_WEBHOOK: dict[str, Any] = {
    "retry_initial_seconds": 0.05,
    "retry_max_seconds": 0.2,
    "poll_seconds": 0.2,
    "timeout_seconds": 2,
    "lease_seconds": 5,
}


def with_webhook(settings: Settings, tmp_path: Path, url: str, table: dict[str, Any] | None = None) -> Settings:
    """`settings` with a `[webhook]` table for `url`, parsed as Airlock parses it."""
    parsed = settings_from_document(
        {"webhook": {"url": url, **FAST_WEBHOOK, **(table or {})}},
        base_dir=tmp_path,
        env={"AIRLOCK_SECRET_KEY": SECRET_KEY, "AIRLOCK_WEBHOOK_SECRET": SECRET},
        require_upstreams=False,
    )
    return dataclasses.replace(settings, webhook=parsed.webhook)


StartWebhookAirlock = Callable[..., Awaitable[AirlockUnderTest]]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver, listening."""
    hook = Receiver()
    await hook.start()
    try:
        yield hook
    finally:
        await hook.stop()


@pytest.fixture
async def down_receiver() -> AsyncIterator[Receiver]:
    """A receiver whose port refuses connections until the test calls `start()`."""
    hook = Receiver()
    try:
        yield hook
    finally:
        await hook.stop()


@pytest.fixture
async def start_webhook_airlock(
    tmp_path: Path, upstream_url: str, database_url: str
) -> AsyncIterator[StartWebhookAirlock]:
    """`await start_webhook_airlock(receiver, webhook_table={...}, **settings overrides)`; alice and bob review.

    Every Airlock started shares the test's database, as replicas do.
    """
    async with AsyncExitStack() as stack:

        async def start(
            hook: Receiver, *, webhook_table: dict[str, Any] | None = None, **overrides: Any
        ) -> AirlockUnderTest:
            settings = settings_for_test(tmp_path, upstream_url, database_url, **overrides)
            settings = with_webhook(settings, tmp_path, hook.url, webhook_table)
            airlock = await stack.enter_async_context(running_airlock(settings))
            for name in ("alice", "bob"):
                async with airlock.runtime.db.read() as conn:
                    known = await tokens.reviewer_named(conn, name)
                if known is None:
                    await airlock.reviewer_token(name)
            return airlock

        yield start


def outbox_of(airlock: AirlockUnderTest) -> Any:
    extension = next(e for e in airlock.runtime.extensions if isinstance(e, WebhookExtension))
    return extension.outbox


def signature_of(secret: str, timestamp: int, body: bytes) -> str:
    """The documented scheme: hex HMAC-SHA256 of `"{t}." + body`."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verifies(delivery: Delivery, secret: str = SECRET, *, tolerance: float = 300) -> bool:
    """Check a delivery as a receiver following docs/webhook.md would."""
    parts = dict(part.split("=", 1) for part in delivery.headers["Airlock-Signature"].split(","))
    timestamp = int(parts["t"])
    fresh = abs(time.time() - timestamp) <= tolerance
    return fresh and hmac.compare_digest(parts["v1"], signature_of(secret, timestamp, delivery.body))


async def send_decision(
    airlock: AirlockUnderTest,
    document: dict[str, Any] | bytes,
    *,
    secret: str = SECRET,
    offset: int = 0,
    header: str | None = None,
) -> httpx.Response:
    """POST a decision to /webhook/decisions, signed with `secret` at now + `offset` seconds unless `header` is given."""
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    at = int(time.time()) + offset
    headers = {"Content-Type": "application/json"}
    signature = header if header is not None else f"t={at},v1={signature_of(secret, at, body)}"
    if signature:
        headers["Airlock-Signature"] = signature
    async with httpx.AsyncClient(base_url=airlock.url, timeout=10) as client:
        return await client.post("/webhook/decisions", content=body, headers=headers)
