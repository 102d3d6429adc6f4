"""The few Slack Web API calls Airlock makes, each bounded by a timeout, and how to read their failures.

A thin layer over `slack_sdk`'s `AsyncWebClient`; it decides nothing. Callers choose the timeout:
the outbox gives background calls `api_timeout_seconds`, the interactions endpoint gives the calls
it must make before answering Slack (`views.open`, user-group lookups) `click_timeout_seconds`.

Deliberate departures from the SDK's defaults (do not "fix" without reading why):
- `retry_handlers=[]`: no retries inside a call. The SDK's connection-error handler would sleep
  inside the call, and its rate-limit handler sleeps `Retry-After`; both belong to the durable
  outbox, which reschedules the row (honouring `Retry-After`) instead of holding a task or a click.
- No shared `aiohttp.ClientSession`: the SDK opens one per call. Airlock makes a handful of calls
  per approval, and this keeps the client free of loop-bound state at construction time.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from app.config import SlackSettings
from app.slack.blocks import Message

logger = logging.getLogger("airlock.slack")


class SlackApi:
    def __init__(self, settings: SlackSettings) -> None:
        self._client = AsyncWebClient(
            token=settings.bot_token,
            base_url=settings.api_url,
            timeout=math.ceil(settings.api_timeout_seconds) + 1,
            retry_handlers=[],
        )

    async def post_message(self, channel: str, message: Message, *, timeout: float) -> tuple[str, str]:
        """Post `message` to `channel`; returns the channel id and the message `ts` Slack assigned."""
        async with asyncio.timeout(timeout):
            response = await self._client.chat_postMessage(
                channel=channel, text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False
            )
        return str(response["channel"]), str(response["ts"])

    async def update_message(self, channel: str, ts: str, message: Message, *, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await self._client.chat_update(channel=channel, ts=ts, text=message.text, blocks=message.blocks)

    async def post_ephemeral(self, channel: str, user: str, text: str, *, timeout: float) -> None:
        """A note only `user` sees in `channel`."""
        async with asyncio.timeout(timeout):
            await self._client.chat_postEphemeral(channel=channel, user=user, text=text)

    async def open_view(self, trigger_id: str, view: dict[str, Any], *, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await self._client.views_open(trigger_id=trigger_id, view=view)

    async def usergroup_members(self, usergroup: str, *, timeout: float) -> frozenset[str]:
        async with asyncio.timeout(timeout):
            response = await self._client.usergroups_users_list(usergroup=usergroup)
        users = response.get("users") or []
        return frozenset(str(user) for user in users)

    async def user_email(self, user: str, *, timeout: float) -> str | None:
        """The e-mail on `user`'s Slack profile (None when it shows none); needs `users:read.email`."""
        async with asyncio.timeout(timeout):
            response = await self._client.users_info(user=user)
        profile = (response.get("user") or {}).get("profile") or {}
        email = profile.get("email")
        return email if isinstance(email, str) and email else None


def retry_after(error: BaseException) -> float | None:
    """The seconds a 429 answer asks us to wait (`Retry-After`), or None for any other failure."""
    if not isinstance(error, SlackApiError) or getattr(error.response, "status_code", None) != 429:
        return None
    headers = getattr(error.response, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except (TypeError, ValueError):
        return 1.0


def error_code(error: BaseException) -> str | None:
    """Slack's `error` string (`channel_not_found`, `message_not_found`, …) when it sent one."""
    if isinstance(error, SlackApiError):
        try:
            code = error.response.get("error")
        except Exception:
            return None
        return str(code) if code else None
    return None


def describe(error: BaseException) -> str:
    """One line for logs and the outbox's `last_error`."""
    if isinstance(error, SlackApiError):
        status = getattr(error.response, "status_code", "?")
        return f"Slack answered HTTP {status}" + (f" ({error_code(error)})" if error_code(error) else "")
    if isinstance(error, TimeoutError):
        return "Slack did not answer in time"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
