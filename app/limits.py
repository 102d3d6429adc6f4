"""The HTTP server's limits: what uvicorn enforces, and the request timeout it lacks.

`uvicorn_limits(settings)` turns `[server]` into uvicorn options, for `airlock serve` and
`airlock demo` alike:

- `max_connections` → `limit_concurrency`. uvicorn still accepts a connection over the cap but
  answers its requests 503 ("Service Unavailable", logged as "Exceeded concurrency limit.") and
  closes it. It counts open connections (idle keep-alive ones and held calls too) and running
  requests, the refused one's own connection included: so it is given `max_connections + 1`, for
  `max_connections` connections to be served.
- `keepalive_timeout_seconds` → `timeout_keep_alive`: an idle connection is closed after it.
- `request_timeout_seconds` → `http`: uvicorn's httptools protocol with a header timeout
  (`HeaderTimeoutProtocol`).
- `shutdown_grace_seconds` → `timeout_graceful_shutdown`: how long in-flight requests may finish
  after SIGTERM (`app/drain.py` hands held calls back first).
- `forwarded_allow_ips` → `proxy_headers` and `forwarded_allow_ips`: uvicorn takes the client
  address and scheme from `X-Forwarded-For`/`-Proto` only on connections from those addresses
  (none by default: the headers are ignored).

`RequestTimeout` is the ASGI middleware for `request_timeout_seconds`. Neither of uvicorn's HTTP
implementations (h11, httptools) limits how long a request's body may take, so a client that sends
headers and then trickles or withholds the body would hold its connection and its request
forever. The middleware gives the body a budget: the time the app spends waiting in `receive` for
body bytes, in all. Once the body is complete there is no limit, so a response may take as long as
it needs (held calls, event streams, which listen on `receive` for the client's disconnect).

Deliberate departures (DO NOT "fix" without reading why):

- Only time spent waiting for body bytes counts, not the app's own work before or between reads
  (checking a token in a slow database): that must not turn into a 408 blamed on the client.
- A late request is cancelled, not told `http.disconnect`. A disconnect raises `ClientDisconnect`
  in Starlette routes, which `FailClosed` would log as a failure with a traceback; cancellation
  passes through `except Exception` handlers untouched, and this class answers 408 itself.
- Slowly sent *headers* never reach the app (it is only called once they are complete), and
  uvicorn has no header timeout. `HeaderTimeoutProtocol` adds one to uvicorn's httptools
  protocol: a connection whose request headers are not complete within `request_timeout_seconds`
  of its first byte (or of the connection, for one that sends nothing) is closed. Between
  requests on a kept-alive connection, uvicorn's own keep-alive timeout applies instead.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from starlette.requests import ClientDisconnect, Request
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import ServerSettings
from app.jsonrpc import dumps, error_response
from app.protocol import INVALID_REQUEST
from app.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("airlock")

REQUEST_TIMEOUT_STATUS: Final = 408


def uvicorn_limits(server: ServerSettings) -> dict[str, Any]:
    """The keyword arguments of `uvicorn.run` / `uvicorn.Config` that apply `[server]`."""
    return {
        "limit_concurrency": server.max_connections + 1,
        "timeout_keep_alive": server.keepalive_timeout_seconds,
        "http": header_timeout_protocol(server.request_timeout_seconds),
        "timeout_graceful_shutdown": server.shutdown_grace_seconds,
        "proxy_headers": bool(server.forwarded_allow_ips),
        "forwarded_allow_ips": list(server.forwarded_allow_ips) or None,
    }


def header_timeout_protocol(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, closing connections whose request headers take over `seconds`."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": seconds})


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a deadline for each request's headers (see the module docstring)."""

    header_timeout: float = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._await_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._await_headers()

    def on_headers_complete(self) -> None:
        self._headers_arrived()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_arrived()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _headers_arrived(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            logger.warning(
                "%s: request headers did not arrive within %g s; connection closed",
                _peer(self.client),
                self.header_timeout,
            )
            self.transport.close()


def _peer(client: tuple[str, int] | None) -> str:
    return "a client" if client is None else f"{client[0]}:{client[1]}"


class RequestTimeout:
    """Cut off a request whose body does not arrive within `seconds` of its start (408, connection closed)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("the request timeout must be a positive number of seconds")
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = _TimedRequest(receive, send, self.seconds)
        try:
            async with asyncio.timeout(None) as request.deadline:
                await self.app(scope, request.receive, request.send)
        except TimeoutError:
            if request.deadline is None or not request.deadline.expired():
                raise
            logger.warning(
                "%s %s: the request body did not arrive within %g s; connection closed",
                scope.get("method"),
                scope.get("path"),
                self.seconds,
            )
            if not request.started:
                await _answer_timeout(scope, send)


class _TimedRequest:
    """One request's `receive`, with a budget for the time spent awaiting body bytes, and a `send` that notes the start."""

    def __init__(self, receive: Receive, send: Send, budget: float) -> None:
        self._receive = receive
        self._send = send
        self._left = budget
        self.deadline: asyncio.Timeout | None = None
        self.body_complete = False
        self.started = False

    async def receive(self) -> Message:
        if self.body_complete or self.deadline is None:
            return await self._receive()
        loop = asyncio.get_running_loop()
        began = loop.time()
        self.deadline.reschedule(began + self._left)
        try:
            message = await self._receive()
        finally:
            self._left -= loop.time() - began
            if not self.deadline.expired():
                self.deadline.reschedule(None)
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.body_complete = True
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


async def _answer_timeout(scope: Scope, send: Send) -> None:
    reason = "Request Timeout: the request body did not arrive in time"
    if str(scope.get("path", "")).startswith("/mcp/"):
        body = dumps(error_response(None, INVALID_REQUEST, reason))
    else:
        body = dumps({"error": reason})
    await send(
        {
            "type": "http.response.start",
            "status": REQUEST_TIMEOUT_STATUS,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_body(request: Request, max_bytes: int) -> bytes | None:
    """A request's whole body (the exact bytes a sender signed), read at most `max_bytes` far.

    Returns:
        The body; None when it is (or declares itself) larger than `max_bytes`; b"" when the
        client went away before it ended.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                return None
            chunks.append(chunk)
    except ClientDisconnect:
        return b""
    return b"".join(chunks)
