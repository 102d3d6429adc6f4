"""stdio upstreams, served to the rest of Airlock as Streamable HTTP on a private loopback socket.

An `[[upstreams]]` entry with `command = [...]` runs an MCP server as a child process speaking
newline-delimited JSON-RPC on stdin/stdout. Rather than teach the gateway, the approval executor
and the session registry a second transport, Airlock runs this bridge in-process: it serves each
stdio upstream as a handshake-era Streamable HTTP endpoint on `127.0.0.1:<ephemeral port>`, and
the upstream's `url` points there, so everything that works for HTTP upstreams (policy, approvals,
audit, at-most-once execution, sessions) works unchanged for stdio ones.

Isolation: **one child process per upstream session.** Each `initialize` through the bridge starts
a new child (`app/stdio/session.py`), which only that session's requests reach; Airlock's own
sessions are bound to one agent each (`app/sessions.py`), so no message of one agent can reach
another, and request ids need no remapping. A session ends, and its child with it, when it is
DELETEd (Airlock releases upstream sessions when an agent's session ends or idles out). A child
whose session had no request for `idle_seconds` is stopped, but the session stays: its next
request starts a fresh child and replays the session's `initialize` (what the server kept in
memory is lost, as after a crash). At most `max_processes` children of one upstream run at once;
starting one more gets HTTP 429 with a JSON-RPC error saying so (a 4xx: nothing ran, so the
executor records an approved call as `failed`, never `outcome_unknown`).

The HTTP contract (what `app/upstream.py` and `app/approvals/executor.py` rely on):

| request                                   | answer |
|-------------------------------------------|--------|
| POST `initialize`                         | a new child; its answer as JSON, with `Mcp-Session-Id` |
| POST a request in a session               | the child's answer as JSON; as SSE when the child first sends progress for it or a server→client request |
| POST a notification or response           | 202, written to the child |
| POST in an unknown or ended session       | 404 (the client initializes again; the executor opens a new session: nothing ran) |
| a child would exceed `max_processes`      | 429 with a JSON-RPC error (nothing ran) |
| POST with no session, 2026-07-28 version  | 400, a JSON-RPC error naming the limitation (see below) |
| the child exits before answering (JSON)   | 502 with a JSON-RPC error: the executor marks an approved call `outcome_unknown`, the agent reads why |
| the child exits mid-stream (SSE)          | the connection is cut: the executor marks an approved call `outcome_unknown`; never re-sent |
| GET in a session                          | the session's stream of messages tied to no request (list changes, logs, server requests made while no request is open) |
| DELETE                                    | the child is stopped (SIGTERM, then SIGKILL after a grace) |

A child that exits on its own is a crash: its in-flight requests fail as above, and the session's
next request starts a fresh child and replays the session's `initialize` into it, so the agent's
next call works in the same session. Restarts back off per upstream after repeated crashes
(`app/stdio/pool.py`: immediately, then 0.5 s doubling to 30 s).

Deliberate limits (DO NOT "fix" without reading issue 14):
- 2026-07-28 requests are not bridged: a stdio server speaks the handshake era only, and
  translating between the eras (`server/discover`, `resultType`, envelopes) is issue 14 item 3.
  The bridge answers them with HTTP 400 and a JSON-RPC error, which is what a handshake-only
  server answers; the official SDK's `mode="auto"` client takes that as "legacy server" and falls
  back to `initialize`, so auto-mode agents work, in the handshake era.
- Server→client requests (sampling, elicitation, roots) travel on the stream of the agent's
  request in flight, else on the session's GET stream, and the agent's answer comes back as a
  POST (a JSON-RPC response) to the same child. With neither open there is no way to reach the
  agent, so the child gets a JSON-RPC error at once ("not supported through Airlock's stdio
  bridge").
- The bridge is reachable only on loopback and only under a random path secret, so another local
  process cannot use it to run the stdio server behind Airlock's policy.
- aiohttp's web server rather than a second uvicorn: it is already a dependency, runs inside
  Airlock's event loop with no signal handling of its own, and lets a handler cut a connection.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, Final

from aiohttp import web
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from app.config import UpstreamSettings
from app.jsonrpc import INTERNAL_ERROR, INVALID_REQUEST, dumps, error_response, is_response, json_object
from app.protocol import MCP_PROTOCOL_VERSION, MCP_SESSION_ID
from app.stdio.pool import Refused, StdioUpstream
from app.stdio.session import ChildSession, Ended, InFlight, Line

logger = logging.getLogger("airlock.stdio")

_MAX_BODY_BYTES: Final = 64 * 1024 * 1024
KEEPALIVE_SECONDS: Final = 15.0
"""An SSE comment this often on an idle GET stream (as sse-starlette's default ping), so no read timeout ends it."""
_SSE_HEADERS: Final = {"content-type": "text/event-stream", "cache-control": "no-cache"}


class StdioBridge:
    """Every stdio upstream of one Airlock, served on one private loopback port."""

    def __init__(self, upstreams: Sequence[UpstreamSettings], *, max_line_bytes: int) -> None:
        self._secret = secrets.token_urlsafe(24)
        self.upstreams = {
            u.name: StdioUpstream(u, u.stdio, max_line_bytes=max_line_bytes) for u in upstreams if u.stdio is not None
        }
        self._base = ""
        self._runner: web.AppRunner | None = None
        self._reaper: asyncio.Task[None] | None = None

    def point(self, settings: UpstreamSettings) -> UpstreamSettings:
        """`settings` with its `url` at the bridge for a stdio upstream; unchanged for an HTTP one."""
        if settings.name not in self.upstreams:
            return settings
        if not self._base:
            raise RuntimeError("StdioBridge.point() needs the bridge running (enter run() first)")
        return replace(settings, url=f"{self._base}/{self._secret}/{settings.name}")

    async def start(self) -> None:
        """Serve the stdio upstreams (nothing to do when there are none). Call `stop()` once, at shutdown."""
        if not self.upstreams or self._runner is not None:
            return
        app = web.Application(client_max_size=_MAX_BODY_BYTES)
        app.router.add_route("*", "/{secret}/{upstream}", self._handle)
        # handler_cancellation: a request whose connection Airlock closed (a 2026-07-28 cancel, a
        # timeout) stops waiting for its answer, so it no longer counts as in flight.
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY applies
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self._base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._reaper = asyncio.get_running_loop().create_task(self._reap(), name="stdio-reaper")

    async def stop(self) -> None:
        """Stop every child (SIGTERM, SIGKILL after a grace), then the server."""
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
        await asyncio.gather(*(u.stop_all() for u in self.upstreams.values()))
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @asynccontextmanager
    async def run(self) -> AsyncIterator[StdioBridge]:
        """`start()`, then `stop()` on exit."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    async def _reap(self) -> None:
        period = min(30.0, min(u.stdio.idle_seconds for u in self.upstreams.values()) / 4)
        while True:
            await asyncio.sleep(period)
            for upstream in self.upstreams.values():
                await upstream.reap_idle(time.monotonic())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        upstream = self.upstreams.get(request.match_info["upstream"])
        if upstream is None or not secrets.compare_digest(request.match_info["secret"], self._secret):
            return web.Response(status=404)
        if request.method == "POST":
            return await _post(request, upstream)
        if request.method == "DELETE":
            closed = await upstream.close(request.headers.get(MCP_SESSION_ID, ""))
            return web.Response(status=200 if closed else 404)
        if request.method == "GET":
            return await _listen(request, upstream)
        return _error(405, INVALID_REQUEST, "Method Not Allowed", None)


async def _post(request: web.Request, upstream: StdioUpstream) -> web.StreamResponse:
    body = await request.read()
    message = json_object(body)
    if message is None:
        return _error(400, INVALID_REQUEST, "Bad Request: the body must be one JSON-RPC message", None)
    # A JSON text holds raw line breaks only as whitespace between tokens, never inside a string.
    line = body.replace(b"\r", b" ").replace(b"\n", b" ").strip()
    request_id = message.get("id") if "method" in message else None
    try:
        if message.get("method") == "initialize" and "id" in message:
            return await _initialize(request, upstream, line, request_id)
        session = _session(request, upstream, request_id)
        await upstream.ensure_running(session)
        if "method" not in message or "id" not in message:  # a notification, or the client's answer
            await session.send(line)
            if message.get("method") == "notifications/cancelled":
                params = message.get("params")
                session.cancelled(params.get("requestId") if isinstance(params, dict) else None)
            return web.Response(status=202)
        return await _exchange(request, session, line, message)
    except Refused as exc:
        return _error(exc.status, exc.code, str(exc), request_id)
    except ConnectionError as exc:
        return _error(502, INTERNAL_ERROR, f"stdio upstream {upstream.name!r}: {exc}", request_id)


async def _initialize(
    request: web.Request, upstream: StdioUpstream, line: bytes, request_id: Any
) -> web.StreamResponse:
    if MCP_SESSION_ID in request.headers:
        raise Refused(400, "Bad Request: initialize must not carry a session id", INVALID_REQUEST)
    session, answer = await upstream.open_session(line, request_id)
    return web.Response(
        status=200, body=answer.raw, content_type="application/json", headers={MCP_SESSION_ID: session.id}
    )


def _session(request: web.Request, upstream: StdioUpstream, request_id: Any) -> ChildSession:
    session_id = request.headers.get(MCP_SESSION_ID)
    if session_id is None:
        if request.headers.get(MCP_PROTOCOL_VERSION) in MODERN_PROTOCOL_VERSIONS:
            raise Refused(
                400,
                f"stdio upstream {upstream.name!r} speaks the handshake era only (initialize, then "
                "Mcp-Session-Id); Airlock does not bridge 2026-07-28 requests to stdio servers yet",
                INVALID_REQUEST,
            )
        raise Refused(400, "Bad Request: Missing session ID", INVALID_REQUEST)
    session = upstream.sessions.get(session_id)
    if session is None:
        raise Refused(404, "Session not found", INVALID_REQUEST)
    return session


async def _exchange(
    request: web.Request, session: ChildSession, line: bytes, message: Mapping[str, Any]
) -> web.StreamResponse:
    """Send one request to the child; answer with its response as JSON, or as SSE if other messages come first."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    flight = session.open(message["id"], meta.get("progressToken") if isinstance(meta, dict) else None)
    try:
        await session.send(line)
        first = await flight.queue.get()
        if isinstance(first, Ended):
            return _error(502, INTERNAL_ERROR, first.reason, message["id"])
        if is_response(first.message):
            return web.Response(status=200, body=first.raw, content_type="application/json")
        return await _stream(request, flight, first)
    finally:
        session.done(message["id"])


async def _stream(request: web.Request, flight: InFlight, first: Line) -> web.StreamResponse:
    """Relay the child's messages for one request as SSE until its response.

    A child that exits mid-stream cuts the connection: the status line already said 200, and a
    JSON-RPC error in the stream would tell the executor the call failed, when it may have run.
    """
    stream = web.StreamResponse(status=200, headers=_SSE_HEADERS)
    await stream.prepare(request)
    item: Line | Ended = first
    while not isinstance(item, Ended):
        await stream.write(_event(item))
        if is_response(item.message):
            await stream.write_eof()
            return stream
        item = await flight.queue.get()
    logger.warning("cutting a stream: %s", item.reason)
    if request.transport is not None:
        request.transport.abort()
    return stream


async def _listen(request: web.Request, upstream: StdioUpstream) -> web.StreamResponse:
    """The session's GET stream: the child's messages that belong to no request, until the session ends."""
    try:
        session = _session(request, upstream, None)
    except Refused as exc:
        return _error(exc.status, exc.code, str(exc), None)
    queue: asyncio.Queue[Line | Ended] = asyncio.Queue()
    session.listeners.append(queue)
    stream = web.StreamResponse(status=200, headers=_SSE_HEADERS)
    try:
        await stream.prepare(request)
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                await stream.write(b": keep-alive\n\n")
                continue
            if isinstance(item, Ended):
                break
            await stream.write(_event(item))
        await stream.write_eof()
    except ConnectionError:  # Airlock closed the stream
        pass
    finally:
        if queue in session.listeners:
            session.listeners.remove(queue)
    return stream


def _event(line: Line) -> bytes:
    return b"event: message\ndata: " + line.raw + b"\n\n"


def _error(status: int, code: int, message: str, request_id: Any) -> web.Response:
    return web.Response(
        status=status, body=dumps(error_response(request_id, code, message)), content_type="application/json"
    )
