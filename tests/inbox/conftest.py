"""Fixtures and helpers for the web inbox: signing in over HTTP, holding calls, reading the live feed,
and a real Chromium for the browser tests.

Browser tests use Debian's Chromium at `/usr/bin/chromium` (Playwright's own browser download does
not work offline). Without it they skip with the reason, unless `CI` is set: then they fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.demo.upstream import DemoMarket
from app.inbox import Inbox
from tests.harness import AirlockUnderTest, new_task
from tests.net import wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
APPROVED: tuple[str, ...] = ("approved", "executing", "completed")
"""An approval's statuses once approved, as far as a test that waits for it can tell."""
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, "the page has no CSRF token"
    return match.group(1)


def inbox_of(airlock: AirlockUnderTest) -> Inbox:
    return next(e for e in airlock.runtime.extensions if isinstance(e, Inbox))


@asynccontextmanager
async def web_client(airlock: AirlockUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping HTTP client that does not follow redirects (tests look at them)."""
    async with httpx.AsyncClient(base_url=airlock.url, timeout=10) as client:
        yield client


async def sign_in(client: httpx.AsyncClient, airlock: AirlockUnderTest, name: str = "alice") -> str:
    """Sign `client` in as reviewer `name` through the form; returns the session's CSRF token."""
    token = await airlock.reviewer_token(name)
    form = await client.get("/inbox/-/login")
    response = await client.post(
        "/inbox/-/login", data={"name": name, "token": token, "csrf_token": csrf_of(form.text)}
    )
    assert response.status_code == 303, response.text
    page = await client.get("/inbox")
    assert page.status_code == 200
    return csrf_of(page.text)


async def pending_with(
    airlock: AirlockUnderTest, *, agent: str, tool: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    """Wait until the approval for this call is pending; return it (as the API shows it)."""
    found: list[dict[str, Any]] = []

    async def appeared() -> bool:
        found[:] = [
            a
            for a in await airlock.approvals("pending")
            if (a["agent"], a["tool"], a["arguments"]) == (agent, tool, arguments)
        ]
        return bool(found)

    await wait_for(appeared, timeout=10)
    return found[0]


@asynccontextmanager
async def held_call(
    airlock: AirlockUnderTest,
    market: DemoMarket,
    *,
    agent: str = "agent-1",
    tool: str = "em_cancel_task",
    arguments: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[asyncio.Task[Any], dict[str, Any]]]:
    """A call held for approval, made by the official SDK client: (the call as a task, its approval).

    The default is `em_cancel_task` on a fresh task, which the test policy always sends for approval.
    """
    if arguments is None:
        arguments = {"task_id": new_task(market).id, "reason": "duplicate"}
    async with airlock.client(agent) as client:
        call = asyncio.create_task(client.call_tool(tool, arguments))
        try:
            yield call, await pending_with(airlock, agent=agent, tool=tool, arguments=arguments)
        finally:
            if not call.done():
                call.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await call


class Feed:
    """Reads a live feed's server-sent events, one at a time, with a bounded wait."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, event: str = "approval", *, timeout: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            name, data = "message", ""
            async for line in self._lines:
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif line == "":
                    if name == event and data:
                        payload: dict[str, Any] = json.loads(data)
                        return payload
                    name, data = "message", ""
        raise AssertionError(f"the feed ended before a {event!r} event")

    async def until(self, approval_id: str, *statuses: str, timeout: float = 10) -> dict[str, Any]:
        """The first event for `approval_id` in one of `statuses` (the feed sends the row as it is
        when read, so an approved call may already be `executing` or `completed`)."""
        async with asyncio.timeout(timeout):
            while True:
                payload = await self.next(timeout=timeout)
                if payload["id"] == approval_id and payload["status"] in statuses:
                    return payload


@asynccontextmanager
async def live_feed(client: httpx.AsyncClient, *, since: float) -> AsyncIterator[Feed]:
    async with client.stream("GET", "/inbox/-/events", params={"since": f"{since:.6f}"}) as response:
        assert response.status_code == 200
        yield Feed(response)


@pytest.fixture
def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but there is no Chromium at {CHROMIUM}; install Debian's chromium (.ci/run does)")
    pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's `chromium` package to run the browser tests")


@pytest.fixture
async def browser(require_chromium: None) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()
