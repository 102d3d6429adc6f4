"""One upstream session of a stdio upstream: its own child process, and the routing of its messages.

Boundary: a `ChildSession` owns one `StdioProcess` for exactly one upstream session (so for
exactly one agent session: no message of one agent can reach another, by construction). It sends
the session's messages to the child and sorts every line the child writes to the request it
belongs to. HTTP is `app/stdio/bridge.py`'s business; starting and stopping the program is
`app/stdio/process.py`'s.

How a line from the child is routed:

| the line                                           | goes to                                  |
|----------------------------------------------------|------------------------------------------|
| a response                                         | the request with that id                 |
| a notification whose `progressToken` is a request's | that request                            |
| a server→client request (sampling, elicitation, roots) | the newest request in flight, else the GET stream |
| the same with neither open                         | answered at once with a JSON-RPC error   |
| any other notification (list changes, log messages) | the GET stream, else dropped (logged at debug level) |

Everything stays within one agent's session either way. Other notifications go to the GET stream,
not to a request in flight: stdio carries no "related request" marker, and answering a call as a
stream just because an unrelated `list_changed` came along would turn a crash into a cut
connection instead of a clear error (see `app/stdio/bridge.py`).

Request ids pass through unchanged (the child's id space is this session's alone). A child that
exits while requests are in flight fails each of them with `Ended`; the session keeps its
original `initialize` and replays it into a fresh child on the next request (`restart`), so the
agent's next call works without a new handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from app.jsonrpc import INTERNAL_ERROR, dumps, error_response, is_response, json_object
from app.stdio.process import StdioProcess

logger = logging.getLogger("airlock.stdio")

UNSUPPORTED_SERVER_REQUEST: Final = (
    "not supported through Airlock's stdio bridge: no request of the client is open to carry it"
)
_REPLAY_ID: Final = "airlock-stdio-reinitialize"

Spawn = Callable[[Callable[[bytes], Awaitable[None]]], Awaitable[StdioProcess]]


@dataclass(frozen=True)
class Ended:
    """Put on a request's queue when it will get no answer: the child exited, or the client cancelled it."""

    reason: str


@dataclass(frozen=True)
class Line:
    """One message from the child: decoded for routing, and the bytes it came as (relayed unchanged)."""

    message: dict[str, Any]
    raw: bytes


Item = Line | Ended


@dataclass
class InFlight:
    """A request sent to the child and not yet answered: its answer and related messages queue here."""

    progress_token: str | None
    """The request's `_meta.progressToken` as an `id_key`, if it has one."""
    queue: asyncio.Queue[Item] = field(default_factory=asyncio.Queue)


def id_key(value: Any) -> str:
    """A request id as a dictionary key that keeps `1` and `"1"` apart."""
    return json.dumps(value)


class ChildSession:
    """The child process behind one upstream session, and the requests it has in flight."""

    def __init__(self, session_id: str, tag: str, spawn: Spawn, initialize_line: bytes) -> None:
        self.id = session_id
        self.tag = tag
        self._spawn = spawn
        self._initialize_line = initialize_line
        self.process: StdioProcess | None = None
        self.in_flight: dict[str, InFlight] = {}
        self.last_used = time.monotonic()
        self.started_at = 0.0
        self.closing = False
        self.restart_lock = asyncio.Lock()
        self.listeners: list[asyncio.Queue[Item]] = []
        """The queues of the session's GET streams (messages not tied to a request), newest last."""

    @property
    def running(self) -> bool:
        """Whether the session has a child that takes requests (one being stopped does not)."""
        return self.process is not None and self.process.running and not self.process.stopping

    async def start(self) -> StdioProcess:
        """Start the child (the caller sends `initialize`); its exit fails whatever is in flight."""
        self.process = await self._spawn(self._route)
        self.started_at = time.monotonic()
        return self.process

    async def restart(self, timeout: float) -> None:
        """Start a fresh child and replay the session's `initialize` into it.

        Raises:
            ConnectionError: the new child exited or did not answer within `timeout` seconds.
        """
        process = await self.start()
        message = json_object(self._initialize_line) or {}
        message["id"] = _REPLAY_ID
        answer = await self.request(dumps(message), _REPLAY_ID, None, timeout=timeout)
        if not isinstance(answer, Line) or "result" not in answer.message:
            raise ConnectionError(f"{self.tag}: the restarted process did not accept initialize")
        await process.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')

    async def request(self, line: bytes, request_id: Any, progress_token: Any, *, timeout: float) -> Item:
        """Send a request and wait (at most `timeout` s) for its answer alone; related messages are dropped."""
        flight = self.open(request_id, progress_token)
        try:
            await self.send(line)
            async with asyncio.timeout(timeout):
                while True:
                    item = await flight.queue.get()
                    if isinstance(item, Ended) or is_response(item.message):
                        return item
        except TimeoutError:
            raise ConnectionError(f"{self.tag}: no answer within {timeout:.0f} s") from None
        finally:
            self.done(request_id)

    def open(self, request_id: Any, progress_token: Any) -> InFlight:
        """Register a request before it is sent, so no line answering it can arrive unrouted."""
        flight = InFlight(None if progress_token is None else id_key(progress_token))
        self.in_flight[id_key(request_id)] = flight
        return flight

    def done(self, request_id: Any) -> None:
        self.in_flight.pop(id_key(request_id), None)
        self.last_used = time.monotonic()

    async def send(self, line: bytes) -> None:
        """Write a message to the child.

        Raises:
            ConnectionError: there is no running child.
        """
        if self.process is None:
            raise ConnectionError(f"{self.tag}: no process is running")
        self.last_used = time.monotonic()
        await self.process.send(line)

    def fail_in_flight(self, reason: str) -> None:
        """The child is gone: every request in flight ends with `Ended(reason)`."""
        for flight in self.in_flight.values():
            flight.queue.put_nowait(Ended(reason))
        self.in_flight.clear()

    def cancelled(self, request_id: Any) -> None:
        """The client cancelled a request (the child was told): it will get no answer, so stop waiting."""
        flight = self.in_flight.pop(id_key(request_id), None)
        if flight is not None:
            flight.queue.put_nowait(Ended("the client cancelled the request"))

    def end_listeners(self, reason: str) -> None:
        """The session is over: its GET streams end."""
        for queue in self.listeners:
            queue.put_nowait(Ended(reason))
        self.listeners.clear()

    async def _route(self, line: bytes) -> None:
        message = json_object(line)
        if message is None:
            logger.warning("%s: wrote a line that is not a JSON-RPC message; ignored", self.tag)
            return
        queue = self._queue_for(message)
        if queue is not None:
            queue.put_nowait(Line(message, line))
        elif "method" in message and "id" in message:
            await self._refuse_server_request(message)
        else:
            logger.debug("%s: dropped %s (no stream open to carry it)", self.tag, message.get("method"))

    def _queue_for(self, message: dict[str, Any]) -> asyncio.Queue[Item] | None:
        if is_response(message):  # answered: nothing later belongs to that request
            flight = self.in_flight.pop(id_key(message.get("id")), None)
            return None if flight is None else flight.queue
        params = message.get("params")
        token = params.get("progressToken") if isinstance(params, dict) else None
        for key, flight in reversed(self.in_flight.items()):
            if token is not None and flight.progress_token == id_key(token):
                return flight.queue
            if token is None and "id" in message and key != id_key(_REPLAY_ID):
                return flight.queue  # a server→client request: on the newest request's stream
        return self.listeners[-1] if self.listeners else None

    async def _refuse_server_request(self, message: dict[str, Any]) -> None:
        logger.info("%s: refused the server's %s request: no client request is open", self.tag, message["method"])
        answer = error_response(message["id"], INTERNAL_ERROR, UNSUPPORTED_SERVER_REQUEST)
        with contextlib.suppress(ConnectionError):
            await self.send(dumps(answer))
