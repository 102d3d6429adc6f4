"""The handshake era (2024-11-05 … 2025-11-25): `initialize`, sessions, the GET stream, DELETE.

Airlock proxies each session: `initialize` opens one upstream and Airlock answers with its own
`Mcp-Session-Id` (see `app/sessions.py`), so every later request is checked against the agent
that opened the session and mapped to the upstream's session id. Everything the policy does not
touch is forwarded as it came: notifications, the client's answers to server requests
(elicitation, sampling), the GET stream (with `Last-Event-ID` for the upstream's own events).

`Last-Event-ID` values are either Airlock's own (`<stream id>.<seq>`, a held call's stream,
replayed from the database on any replica) or the upstream's (relayed as `u.<id>` and passed back
without the prefix).

Sessions are bounded per agent and expire when idle (see `app/sessions.py`); a session that was
closed for any reason answers 404, which the spec tells the client to take as "initialize again".
Ending a session (DELETE) releases the upstream session behind it.
"""

from __future__ import annotations

from typing import Protocol

from app.gateway.calls import CallContext, serve_tool_call
from app.gateway.exchange import Exchange
from app.gateway.holding import HeldRequest, parse_event_id
from app.gateway.judged import serve_judged_request
from app.gateway.limits import TooManyHeld
from app.gateway.relay import UPSTREAM_EVENT_PREFIX, Relayed, Transform, relay
from app.gateway.respond import end_stream, send_body, send_empty, send_error
from app.jsonrpc import INTERNAL_ERROR, INVALID_REQUEST, Message, MessageError, dumps, member_text, parse_message
from app.policy.requests import JUDGED_METHODS
from app.protocol import DEFAULT_VERSION, LAST_EVENT_ID, MCP_PROTOCOL_VERSION, MCP_SESSION_ID, Era
from app.tasks import handlers as tasks
from app.upstream import ResponseTooLarge, UpstreamUnavailable, forwardable_headers

PRIMING_SINCE = "2025-11-25"
"""Clients older than this cannot parse an event with empty data, so they get no priming event."""


class Session(Protocol):
    """What this module reads of a session (`app/sessions.py` keeps them; the gateway reads no store)."""

    @property
    def id(self) -> str: ...
    @property
    def agent(self) -> str: ...
    @property
    def upstream(self) -> str: ...
    @property
    def upstream_session_id(self) -> str | None: ...
    @property
    def protocol_version(self) -> str: ...


async def serve(exchange: Exchange) -> None:
    if exchange.method == "POST":
        await _post(exchange)
    elif exchange.method == "GET":
        await _get(exchange)
    elif exchange.method == "DELETE":
        await _delete(exchange)
    else:
        await send_error(
            exchange.send, 405, INVALID_REQUEST, "Method Not Allowed", headers=[(b"allow", b"GET, POST, DELETE")]
        )


async def _post(exchange: Exchange) -> None:
    try:
        message = parse_message(exchange.body)
    except MessageError as exc:
        await send_error(exchange.send, 400, exc.code, exc.message, request_id=exc.request_id)
        return
    if message.kind == "request" and message.method == "initialize":
        await _initialize(exchange, message)
        return
    session = await _session(exchange)
    if session is None:
        return
    await serve_in_session(exchange, session, message)


async def serve_in_session(exchange: Exchange, session: Session, message: Message) -> None:
    """Serve one parsed message (not `initialize`) in `session`; also how an endpoint reaches a member (`aggregate.py`)."""
    try:
        await _dispatch(exchange, session, message)
    except UpstreamUnavailable as exc:
        await send_error(exchange.send, 502, INTERNAL_ERROR, f"Bad Gateway: {exc}", request_id=message.id)
    except ResponseTooLarge as exc:
        await send_error(
            exchange.send, 502, INTERNAL_ERROR, f"Bad Gateway: {exc}; it was not relayed", request_id=message.id
        )
    except MessageError as exc:
        await send_error(exchange.send, 400, exc.code, exc.message, request_id=message.id)


async def _dispatch(exchange: Exchange, session: Session, message: Message) -> None:
    interceptor = exchange.gateway.interceptor
    if message.method == "tools/call":
        await serve_tool_call(exchange, message, _call_context(exchange, session))
    elif message.kind == "request" and message.method == "tools/list":
        transform = interceptor.tools_list_filter(exchange.upstream)
        if tasks.supports_tasks(session.protocol_version):
            transform = tasks.with_task_support(transform, interceptor.may_hold_for(exchange.upstream))
        await _forward(exchange, session, transform=transform)
    elif (
        message.kind == "request"
        and message.method in tasks.TASK_METHODS
        and tasks.supports_tasks(session.protocol_version)
    ):
        await tasks.serve_task_request(exchange, message, _session_header(session))
    elif message.kind == "request" and message.method in JUDGED_METHODS:
        await serve_judged_request(
            exchange, message, lambda: _forward(exchange, session, inspect=True), _session_header(session)
        )
    elif message.kind == "notification" and message.method == "notifications/cancelled":
        await _withdraw_cancelled(exchange, session, message)
        await _forward(exchange, session)
    else:
        await _forward(exchange, session)


def _call_context(exchange: Exchange, session: Session) -> CallContext:
    upstream = exchange.upstream

    async def fetch_catalog() -> None:
        envelope = {
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
            MCP_PROTOCOL_VERSION: session.protocol_version,
        }
        await upstream.fetch_catalog(envelope, None, session.upstream_session_id)

    return CallContext(
        era=Era.HANDSHAKE,
        protocol_version=session.protocol_version,
        session_id=session.id,
        response_headers=_session_header(session),
        forward=lambda inspect: _forward(exchange, session, inspect=inspect),
        fetch_catalog=fetch_catalog,
        resumable=session.protocol_version >= PRIMING_SINCE,
        tasks=tasks.supports_tasks(session.protocol_version),
        upstream_session_id=session.upstream_session_id,
    )


def _session_header(session: Session) -> list[tuple[bytes, bytes]]:
    return [(MCP_SESSION_ID.encode(), session.id.encode())]


async def _session(exchange: Exchange) -> Session | None:
    """The agent's open session named by `Mcp-Session-Id`; answers 400/404 itself when there is none."""
    session_id = exchange.headers.get(MCP_SESSION_ID)
    if session_id is None:
        await send_error(exchange.send, 400, INVALID_REQUEST, "Bad Request: missing Mcp-Session-Id (initialize first)")
        return None
    session = await exchange.gateway.sessions.get(session_id)
    if session is None or session.agent != exchange.agent or session.upstream != exchange.upstream.name:
        await send_error(exchange.send, 404, INVALID_REQUEST, "Session not found")
        return None
    return session


async def _forward(
    exchange: Exchange, session: Session, *, inspect: bool = False, transform: Transform | None = None
) -> Relayed:
    headers = forwardable_headers(exchange.headers)
    if session.upstream_session_id:
        headers[MCP_SESSION_ID] = session.upstream_session_id
    async with exchange.upstream.request(exchange.method, headers=headers, body=exchange.body or None) as response:
        if response.status == 404 and session.upstream_session_id:
            # The upstream forgot the session (it restarted): end ours too, so the client re-initializes.
            await exchange.gateway.sessions.close(session.id)
        # A dropped handshake-era POST stream is not a cancellation (the spec says so): the
        # upstream's call goes on, and its events stay resumable from the upstream if it keeps them.
        return await relay(
            exchange,
            response,
            headers=_session_header(session),
            transform=transform,
            inspect=inspect,
            cancel_on_disconnect=False,
        )


async def refused_initialize(exchange: Exchange, message: Message) -> bool:
    """Refuse (400) an `initialize` that carries a session id; True when refused. Also for endpoints."""
    if MCP_SESSION_ID not in exchange.headers:
        return False
    await send_error(
        exchange.send,
        400,
        INVALID_REQUEST,
        "Bad Request: initialize must not carry a session id",
        request_id=message.id,
    )
    return True


async def _initialize(exchange: Exchange, message: Message) -> None:
    if await refused_initialize(exchange, message):
        return
    headers = forwardable_headers(exchange.headers)
    try:
        async with exchange.upstream.request("POST", headers=headers, body=exchange.body) as response:
            upstream_session = response.headers.get(MCP_SESSION_ID)
            if response.status != 200:
                await relay(exchange, response)
                return
            answer = await response.answer()
    except (UpstreamUnavailable, ResponseTooLarge) as exc:
        await send_error(exchange.send, 502, INTERNAL_ERROR, f"Bad Gateway: {exc}", request_id=message.id)
        return
    if answer is None or "result" not in answer:
        await send_body(
            exchange.send,
            200,
            dumps(
                answer
                or {
                    "jsonrpc": "2.0",
                    "id": message.id,
                    "error": {"code": INTERNAL_ERROR, "message": "the upstream did not answer initialize"},
                }
            ),
        )
        return
    result = answer["result"] if isinstance(answer["result"], dict) else {}
    session = await exchange.gateway.sessions.create(
        agent=exchange.agent,
        upstream=exchange.upstream.name,
        upstream_session_id=upstream_session,
        protocol_version=str(result.get("protocolVersion") or DEFAULT_VERSION),
        initialize_params=member_text(message.raw, "params") or "{}",
    )
    await send_body(exchange.send, 200, dumps(tasks.with_task_capability(answer)), _session_header(session))


async def _withdraw_cancelled(exchange: Exchange, session: Session, message: Message) -> None:
    """`notifications/cancelled` for a held request: the agent no longer wants the call."""
    request_id = message.params.get("requestId")
    if not isinstance(request_id, str | int) or isinstance(request_id, bool):
        return
    reason = message.params.get("reason")
    await exchange.gateway.approvals.cancel_request(
        session.id,
        request_id,
        by=exchange.agent,
        reason=str(reason)[:500] if reason else "the client cancelled the request",
    )


async def _get(exchange: Exchange) -> None:
    session = await _session(exchange)
    if session is None:
        return
    last_event_id = exchange.headers.get(LAST_EVENT_ID)
    if last_event_id is not None and not last_event_id.startswith(UPSTREAM_EVENT_PREFIX):
        await _resume(exchange, session, last_event_id)
        return
    headers = forwardable_headers(exchange.headers)
    headers.pop("content-type", None)
    if session.upstream_session_id:
        headers[MCP_SESSION_ID] = session.upstream_session_id
    if last_event_id is not None:
        headers[LAST_EVENT_ID] = last_event_id[len(UPSTREAM_EVENT_PREFIX) :]
    try:
        async with exchange.upstream.request("GET", headers=headers) as response:
            relayed = relay(exchange, response, headers=_session_header(session))
            if not await exchange.gateway.drain.unless_draining(relayed):
                await end_stream(exchange.send)  # SIGTERM: the client reopens it elsewhere (app/drain.py)
    except UpstreamUnavailable as exc:
        await send_error(exchange.send, 502, INTERNAL_ERROR, f"Bad Gateway: {exc}")


async def _resume(exchange: Exchange, session: Session, last_event_id: str) -> None:
    """Resume a held call's stream after `Last-Event-ID`: replay what was stored, then hold on."""
    gateway = exchange.gateway
    parsed = parse_event_id(last_event_id)
    hold = None
    if parsed is not None:
        hold = await gateway.approvals.resume(parsed[0], agent=exchange.agent, session_id=session.id)
    if hold is None or parsed is None:
        # Another identity's (or a made-up) event id gets nothing, not even confirmation it exists.
        await send_error(exchange.send, 404, INVALID_REQUEST, "Not Found: no stream to resume for this event id")
        return
    try:
        slot = gateway.held.acquire(exchange.agent)
    except TooManyHeld as exc:
        await send_error(
            exchange.send,
            429,
            INVALID_REQUEST,
            f"Too Many Requests: {exc}; wait for one of them to finish, then resume",
        )
        return
    with slot:
        await HeldRequest(exchange, hold, headers=_session_header(session)).serve(replay_after=parsed[1])


async def _delete(exchange: Exchange) -> None:
    session = await _session(exchange)
    if session is None:
        return
    # The registry ends its own record of the session (from its cache: `_session` just read it).
    row = await exchange.gateway.sessions.get(session.id)
    if row is not None:
        await exchange.gateway.sessions.end(row)
    await send_empty(exchange.send, 200, _session_header(session))
