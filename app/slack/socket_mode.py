"""Slack Socket Mode: clicks arrive over WebSockets Airlock opens to Slack, so no public URL is needed.

    apps.connections.open (app-level token, once at start) ──✗ refused──▶ one error, Socket Mode off
        │ wss URL
    `socket_connections` × slack_sdk SocketModeClient (aiohttp; reconnects, pings, refreshes)
        │ envelope {envelope_id, type, payload}
    envelope id seen before ──▶ ack, nothing else
    interactive block_actions ──▶ ack ──▶ SlackInteractions.respond() ──▶ its note, if any
    interactive view_submission ──▶ respond() ──▶ ack carrying the answer (`response_action`)
    anything else ──▶ ack

What reaches Airlock here is exactly what `/slack/interactions` handles after verifying the
signature and parsing the form: the envelope's `payload` is the same interaction object. So both
transports share `SlackInteractions.respond()` (the app, workspace, message, reviewer and routing
checks, the one decision path); this module only moves envelopes and acks. Messages are still
posted and updated by the outbox over the Web API with the bot token; the app-level token is used
for nothing but `apps.connections.open`.

Deliberate choices (do not "fix" without reading why):
- `respond()` answers with the Starlette response the HTTP route sends. Slack defines a Socket
  Mode ack payload as what the HTTP response body would have been, so the body (a modal's
  `{"response_action": "errors", …}`) becomes the ack payload and the response's background task
  (a private note to the clicker) runs after the ack, as it runs after the HTTP response.
- A button click is acked before any work: an ack payload means nothing for `block_actions`
  (python-slack-sdk#946), and an early ack leaves `views.open` the whole `trigger_id` lifetime. A
  modal submission is acked after deciding, because the ack is where its errors go; that work is
  bounded by `click_timeout_seconds`, as over HTTP.
- Duplicates: Slack may deliver an envelope again (reconnects, several connections). Envelope ids
  are remembered per process, across all its connections, and a repeat is acked and dropped, so it
  neither decides twice nor sends a second note. The decision's compare-and-set is what keeps a
  repeat that reaches another replica from deciding twice; that replica may send one extra note.
- The app token is tried once before any client starts. If Slack refuses it, one error is logged
  and Socket Mode stays off until Airlock restarts (the rest of Airlock runs: messages are posted,
  the web inbox decides): the SDK's `connect()` would retry a refused token every few seconds,
  forever. Network failures and rate limits at start are retried with backoff.
- The app token is never logged: the settings' repr hides it, the SDK redacts `Authorization` in
  its debug logs, and nothing here formats it.

- A connection attempt that has not opened within `_PATIENCE_PINGS` pings starts over with a new
  URL (`_Client.connect`). The SDK's `connect()` retries a failed WebSocket open with the same URL
  for ever, and a URL is a one-time ticket: after an outage Slack may never accept it again
  (what Slack does with an old URL is unconfirmed; the fake's tickets are single-use).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from typing import Any, Final

from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from starlette.responses import Response

from app.config import SlackSettings
from app.slack.interactions import SlackInteractions
from app.slack.payloads import PayloadError, ReasonSubmitted, interaction_of
from app.slack.webapi import describe, error_code, retry_after

logger = logging.getLogger("airlock.slack")

INTERACTIVE: Final = "interactive"
_REMEMBERED: Final = 10_000
"""Envelope ids kept for spotting repeats (a few hours of clicks for any team)."""
_RETRY_MAX_SECONDS: Final = 60.0
_PATIENCE_PINGS: Final = 4
"""A connection attempt gets this many ping intervals (the SDK's staleness limit) before a new URL."""
_RETRIED: Final = frozenset({"ratelimited", "internal_error", "fatal_error", "request_timeout", "service_unavailable"})
"""`apps.connections.open` errors worth retrying; any other means the token or the app is wrong."""


class SocketMode:
    def __init__(self, settings: SlackSettings, interactions: SlackInteractions) -> None:
        if not settings.app_token:
            raise ValueError("Socket Mode needs the app-level token")
        self._settings = settings
        self._interactions = interactions
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.clients: list[SocketModeClient] = []
        self.connected = asyncio.Event()
        """Set once every client has connected (tests wait on it)."""
        self.refused = asyncio.Event()
        """Set when Slack refused the app token and Socket Mode is off."""

    async def run(self) -> None:
        """Hold the connections open until cancelled; return early (logged) if Slack refuses the token."""
        web = AsyncWebClient(
            base_url=self._settings.api_url, timeout=int(self._settings.api_timeout_seconds) + 1, retry_handlers=[]
        )
        url = await self._first_url(web)
        if url is None:
            self.refused.set()
            return
        try:
            await self._connect(web, url)
            await asyncio.Event().wait()
        except Exception:
            logger.exception("Slack Socket Mode stopped; Slack buttons do nothing until Airlock restarts")
        finally:
            closing = [client.close() for client in self.clients]  # type: ignore[no-untyped-call]
            await asyncio.gather(*closing, return_exceptions=True)

    async def _first_url(self, web: AsyncWebClient) -> str | None:
        """A WebSocket URL for the first connection, or None when Slack refuses the app token."""
        delay = 1.0
        while True:
            try:
                response = await web.apps_connections_open(app_token=self._settings.app_token or "")
                return str(response["url"])
            except SlackApiError as exc:
                code = error_code(exc)
                if code not in _RETRIED and getattr(exc.response, "status_code", 200) < 500:
                    logger.error(
                        "Slack refused the app-level token (%s): Socket Mode is off, so Slack buttons do nothing "
                        "until AIRLOCK_SLACK_APP_TOKEN holds a valid xapp- token with the connections:write "
                        "scope and Airlock is restarted (messages are still posted; decide in the web inbox "
                        "meanwhile; see docs/slack.md)",
                        code or describe(exc),
                    )
                    return None
                wait = retry_after(exc)
                wait = delay if wait is None else wait
                logger.warning("could not open a Slack Socket Mode connection (%s); retrying", describe(exc))
            except Exception as exc:
                wait = delay
                logger.warning("could not reach Slack to open Socket Mode (%s); retrying", describe(exc))
            await asyncio.sleep(wait)
            delay = min(delay * 2, _RETRY_MAX_SECONDS)

    async def _connect(self, web: AsyncWebClient, first_url: str) -> None:
        for index in range(self._settings.socket_connections):
            client = _Client(
                app_token=self._settings.app_token or "",
                logger=logging.getLogger("airlock.slack.socket"),
                web_client=web,
                ping_interval=self._settings.socket_ping_seconds,
            )
            client.socket_mode_request_listeners.append(self._on_envelope)
            self.clients.append(client)
            if index == 0:
                client.wss_uri = first_url
            await client.connect()
        logger.info("Slack Socket Mode connected (%d connections)", len(self.clients))
        self.connected.set()

    async def _on_envelope(self, client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        if self._repeated(request.envelope_id):
            logger.info("ignored a repeated Slack envelope %s", request.envelope_id)
            await _ack(client, request.envelope_id)
            return
        if request.type != INTERACTIVE:
            await _ack(client, request.envelope_id)
            return
        try:
            interaction = interaction_of(request.payload)
        except PayloadError as exc:
            logger.warning("ignored a Slack interaction Airlock cannot read: %s", exc)
            await _ack(client, request.envelope_id)
            return
        if isinstance(interaction, ReasonSubmitted):
            response = await self._interactions.respond(interaction)
            await _ack(client, request.envelope_id, _ack_payload(response))
        else:
            await _ack(client, request.envelope_id)
            response = await self._interactions.respond(interaction)
        if response.background is not None:
            await response.background()

    def _repeated(self, envelope_id: str) -> bool:
        """Whether this process saw `envelope_id` before (checked and recorded without yielding)."""
        if envelope_id in self._seen:
            return True
        self._seen[envelope_id] = None
        if len(self._seen) > _REMEMBERED:
            self._seen.popitem(last=False)
        return False


class _Client(SocketModeClient):
    """slack_sdk's aiohttp client, except that a connection attempt stuck on one URL starts over."""

    async def connect(self) -> None:
        while not self.closed:
            try:
                async with asyncio.timeout(self.ping_interval * _PATIENCE_PINGS):
                    await super().connect()  # type: ignore[no-untyped-call]
                return
            except TimeoutError:
                self.logger.warning("a Slack Socket Mode connection did not open in time; asking for a new URL")
                self.wss_uri = None
                # connect() turns auto-reconnect off while it works and back on only on success.
                self.auto_reconnect_enabled = self.default_auto_reconnect_enabled


async def _ack(client: AsyncBaseSocketModeClient, envelope_id: str, payload: dict[str, Any] | None = None) -> None:
    await client.send_socket_mode_response(SocketModeResponse(envelope_id=envelope_id, payload=payload))


def _ack_payload(response: Response) -> dict[str, Any] | None:
    """The HTTP answer's JSON body, which Socket Mode carries in the ack."""
    if not response.body:
        return None
    body = json.loads(bytes(response.body))
    return body if isinstance(body, dict) else None
