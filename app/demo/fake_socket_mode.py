"""The Socket Mode half of the fake Slack: `apps.connections.open` and the `/link/` WebSocket.

Speaks the envelope protocol the real `slack_sdk` Socket Mode client expects (see
`../shared/reference/slack-socket-mode.md`, and the SDK's own `mock_socket_mode_server.py`):

- `apps.connections.open` with `Authorization: Bearer xapp-…` answers a single-use
  `ws://…/link/?ticket=…` URL (any other token: `{"ok": false, "error": "invalid_auth"}`);
- on connect the socket sends `{"type": "hello", "num_connections": n, …}`;
- `send()` pushes an envelope `{envelope_id, type, payload, accepts_response_payload}` to one open
  connection; every ack frame `{envelope_id, payload?}` the app sends back is recorded with the
  time it arrived, so tests can hold Airlock to the 3-second rule;
- `disconnect()` sends `{"type": "disconnect", "reason": …}` (Slack's refresh), `drop()` closes a
  socket from the server side. WebSocket pings are answered by uvicorn.

Tests wait on `wait_until()` (a condition notified on every connection, ack and refusal), never on
sleeps. Boundary: one app, interactive envelopes as the tests and the demo write them; no Events
API, no redelivery of un-acked envelopes, no limit on connections (Slack allows 10).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from starlette.websockets import WebSocket, WebSocketDisconnect

APP_TOKEN: Final = "xapp-1-A0AIRLOCK-1-fake-app-level-token"
LINK_PATH: Final = "/link/"
_POLICY_VIOLATION: Final = 1008


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledgement frame from the app."""

    envelope_id: str
    payload: dict[str, Any] | None
    at: float
    """`time.monotonic()` when it arrived."""
    connection: int


class FakeSocketMode:
    def __init__(self, app_token: str = APP_TOKEN) -> None:
        self.app_token = app_token
        self.opened = 0
        """`apps.connections.open` calls answered with a URL."""
        self.refused = 0
        """`apps.connections.open` calls refused (wrong or missing app token)."""
        self.acks: list[Ack] = []
        self.sent: dict[str, float] = {}
        """Envelope id → `time.monotonic()` when it was last sent."""
        self.refuse_next = 0
        """Refuse this many WebSocket opens (their tickets are spent all the same)."""
        self._sockets: dict[int, WebSocket] = {}
        self._tickets: set[str] = set()
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()

    # ----------------------------------------------------------------- the Web API side

    async def open_connection(self, headers: Mapping[str, str], ws_base: str) -> dict[str, Any]:
        """The body of `apps.connections.open`: a one-use WebSocket URL, or `invalid_auth`."""
        if headers.get("authorization") != f"Bearer {self.app_token}":
            self.refused += 1
            await self._notify()
            return {"ok": False, "error": "invalid_auth"}
        ticket = secrets.token_hex(8)
        self._tickets.add(ticket)
        self.opened += 1
        return {"ok": True, "url": f"{ws_base}{LINK_PATH}?ticket={ticket}"}

    # ----------------------------------------------------------------- the socket

    async def endpoint(self, websocket: WebSocket) -> None:
        ticket = websocket.query_params.get("ticket", "")
        if ticket not in self._tickets:
            await websocket.close(code=_POLICY_VIOLATION)
            return
        self._tickets.discard(ticket)
        if self.refuse_next > 0:
            self.refuse_next -= 1
            await websocket.close(code=_POLICY_VIOLATION)
            return
        await websocket.accept()
        connection = next(self._ids)
        self._sockets[connection] = websocket
        try:
            await websocket.send_json(_hello(len(self._sockets)))
            await self._notify()
            while True:
                await self._record(connection, await websocket.receive_text())
        except (WebSocketDisconnect, RuntimeError):  # RuntimeError: `drop()` closed it under us
            pass
        finally:
            self._sockets.pop(connection, None)
            await self._notify()

    async def _record(self, connection: int, text: str) -> None:
        frame = json.loads(text)
        if isinstance(frame, dict) and isinstance(frame.get("envelope_id"), str):
            payload = frame.get("payload")
            self.acks.append(Ack(frame["envelope_id"], payload or None, time.monotonic(), connection))
            await self._notify()

    # ----------------------------------------------------------------- what tests drive

    @property
    def connections(self) -> list[int]:
        """Ids of the open connections, oldest first."""
        return sorted(self._sockets)

    async def send(
        self,
        payload: dict[str, Any],
        *,
        kind: str = "interactive",
        envelope_id: str | None = None,
        connection: int | None = None,
    ) -> str:
        """Push one envelope to `connection` (default: the newest open one); returns its id."""
        envelope_id = envelope_id or str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": payload.get("type") == "view_submission",
        }
        self.sent[envelope_id] = time.monotonic()
        await self._socket(connection).send_json(envelope)
        return envelope_id

    async def disconnect(self, reason: str = "refresh_requested", *, connection: int | None = None) -> None:
        """Ask the app to move to a new connection, as Slack does every few hours."""
        await self._socket(connection).send_json(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-applink"}}
        )

    async def drop(self, *, connection: int | None = None) -> None:
        """Close a connection from the server side (Slack restarting, a proxy timing out)."""
        await self._socket(connection).close(code=1001)

    def acks_of(self, envelope_id: str) -> list[Ack]:
        return [ack for ack in self.acks if ack.envelope_id == envelope_id]

    async def ack(self, envelope_id: str, *, timeout: float = 5) -> Ack:
        """Wait for the first ack of `envelope_id`."""
        await self.wait_until(lambda: bool(self.acks_of(envelope_id)), timeout=timeout)
        return self.acks_of(envelope_id)[0]

    async def wait_until(self, predicate: Callable[[], bool], *, timeout: float = 5) -> None:
        """Wait until `predicate()` holds; it is re-checked on every connection, ack and refusal."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    def _socket(self, connection: int | None) -> WebSocket:
        if not self._sockets:
            raise RuntimeError("no Socket Mode connection is open")
        return self._sockets[max(self._sockets) if connection is None else connection]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def _hello(connections: int) -> dict[str, Any]:
    return {
        "type": "hello",
        "num_connections": connections,
        "debug_info": {"host": "fake-applink", "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": "A0FAKE"},
    }
