"""Forward an agent's message upstream and relay the answer to the agent as it arrives.

JSON answers are relayed whole (read to their end: see `app/upstream.py`); event streams event by
event (keep-alive comments included), so notifications, progress and server-to-client requests
reach the agent the moment the upstream sends them (a POST's event stream that turns out to hold
only the answer goes back as JSON); any other body (JSON lines, say) chunk by chunk as it arrives,
to its end. An upstream event id is relayed as `u.<id>`, which tells a later `Last-Event-ID`
apart from the ids of Airlock's own held streams (see `holding.py`).

An answer (or one event) larger than `max_response_bytes` raises `ResponseTooLarge` when nothing
has been sent yet, so the caller answers with a clear error; when a stream has already begun, it
ends with a last event answering the request with that error (for a `tools/call`, a tool error
result saying the call ran).

A relay stops when the agent disconnects, and closes the upstream response then: in 2026-07-28
closing the stream is how a client cancels, and the upstream must hear it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

from app.approvals.outcomes import too_large_text
from app.gateway.exchange import Exchange
from app.gateway.respond import Headers, end_stream, send_body, send_chunk, start_sse
from app.jsonrpc import dumps, error_response, is_response, json_object, result_response, tool_error_result
from app.protocol import INTERNAL_ERROR, PROTOCOL_VERSION_META, Era
from app.sse import SSEEvent, SSEParser, comment, encode
from app.types import JSONObject, Receive
from app.upstream import ResponseTooLarge, UpstreamResponse

UPSTREAM_EVENT_PREFIX: Final = "u."
_FIRST_EVENT_WINDOW: Final = 0.05
"""Seconds to wait for an upstream stream's first event before committing to a stream ourselves."""
_DRAIN_WINDOW: Final = 0.005
"""Seconds to wait for a stream to end after its answer (then the connection is dropped instead)."""


Transform = Callable[[JSONObject], JSONObject]


@dataclass
class Relayed:
    """What went back to the agent: the HTTP status and, when inspected, the final JSON-RPC message."""

    status: int
    final: JSONObject | None = None
    disconnected: bool = False

    def outcome(self) -> str:
        """How the audit log words it: `ok`, `tool error`, `error <code>`, `HTTP <status>` or `client disconnected`."""
        if self.disconnected:
            return "client disconnected"
        final = self.final
        if final is None:
            return f"HTTP {self.status}"
        if "error" in final:
            error = final["error"] if isinstance(final["error"], dict) else {}
            return f"error {error.get('code')}"
        result = final.get("result")
        return "tool error" if isinstance(result, dict) and result.get("isError") else "ok"


async def relay(
    exchange: Exchange,
    response: UpstreamResponse,
    *,
    headers: Headers = (),
    transform: Transform | None = None,
    inspect: bool = False,
    cancel_on_disconnect: bool = True,
) -> Relayed:
    """Relay `response` to the agent.

    Args:
        headers: extra response headers (the handshake era's `Mcp-Session-Id`).
        transform: rewrites each JSON-RPC response message (e.g. to drop hidden tools).
        inspect: parse messages so the caller learns the final response (for the audit log).
        cancel_on_disconnect: stop and close the upstream response when the agent disconnects
            (2026-07-28 requests and GET streams). In the handshake era a dropped POST stream is
            not a cancellation, so the upstream is left to finish.
    """
    if response.is_sse and response.status == 200:
        return await _relay_events(
            exchange,
            response,
            headers,
            transform,
            inspect,
            cancel_on_disconnect,
            lone_answer_as_json=exchange.method == "POST",
        )
    if response.status == 200 and not response.is_json and response.content_type:
        return await _relay_chunks(exchange, response, headers, cancel_on_disconnect)
    body = await response.read()
    final: JSONObject | None = None
    if (transform is not None or inspect) and response.is_json:
        message = json_object(body)
        if message is not None and is_response(message):
            final = transform(message) if transform is not None else message
            if transform is not None:
                body = json.dumps(final, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    content_type = response.headers.get("content-type", "application/json").encode("latin-1")
    if response.status in (202, 204) or not body:
        await exchange.send(
            {"type": "http.response.start", "status": response.status, "headers": [(b"content-length", b"0"), *headers]}
        )
        await exchange.send({"type": "http.response.body", "body": b""})
    else:
        await send_body(exchange.send, response.status, body, headers, content_type=content_type)
    return Relayed(response.status, final)


async def _relay_events(
    exchange: Exchange,
    response: UpstreamResponse,
    headers: Headers,
    transform: Transform | None,
    inspect: bool,
    cancel_on_disconnect: bool,
    *,
    lone_answer_as_json: bool,
) -> Relayed:
    """Relay an upstream event stream, or a plain JSON answer when a POST's stream is just that.

    Committing to `text/event-stream` waits, for at most `_FIRST_EVENT_WINDOW`, for the first
    message: when it is the answer itself (what SDK servers send for most calls), the agent gets
    it as `application/json`, which both eras let a server choose per POST, in one write and with
    no stream to keep. Anything else first (a notification, a server request, a keep-alive
    comment, or nothing within the window) commits the stream, and events are relayed as they
    arrive from then on. A GET (a resumed or standalone stream) is always relayed as a stream:
    clients read their resumption GETs as event streams only.
    """
    parser = response.parser()
    held: list[SSEEvent] = []
    if not lone_answer_as_json:
        return await _pump_events(exchange, response, parser, held, headers, transform, inspect, cancel_on_disconnect)
    held.extend(await _first_events(response, parser))
    answer = _lone_answer(held[0]) if len(held) == 1 else None
    if answer is not None:
        final = transform(answer) if transform is not None else answer
        body = (
            json.dumps(final, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            if transform is not None
            else held[0].data.encode("utf-8")
        )
        # Read the stream's end before answering, so the agent's next call finds this upstream
        # connection back in the pool (servers end the stream right after the answer).
        await response.drain(_DRAIN_WINDOW)
        await send_body(exchange.send, 200, body, headers)
        return Relayed(200, final if (transform is not None or inspect) else None)
    return await _pump_events(exchange, response, parser, held, headers, transform, inspect, cancel_on_disconnect)


async def _first_events(response: UpstreamResponse, parser: SSEParser) -> list[SSEEvent]:
    """The stream's first events: those already received, else what arrives within `_FIRST_EVENT_WINDOW`.

    An answer that arrived together with its headers (some do, more under load) is parsed from
    what is buffered, without arming a timer (issue 12).
    """
    events = response.feed(parser, response.read_buffered())
    if events:
        return events
    try:
        async with asyncio.timeout(_FIRST_EVENT_WINDOW):
            while not events:
                chunk = await response.read_chunk()
                if not chunk:
                    break
                events.extend(response.feed(parser, chunk))
    except TimeoutError:
        pass
    return events


async def _pump_events(
    exchange: Exchange,
    response: UpstreamResponse,
    parser: SSEParser,
    held: list[SSEEvent],
    headers: Headers,
    transform: Transform | None,
    inspect: bool,
    cancel_on_disconnect: bool,
) -> Relayed:
    """Commit to an event stream: send `held`, then every further event as it arrives."""
    outcome = Relayed(200)
    await start_sse(exchange.send, headers)

    async def pump() -> None:
        for event in held:
            await _send_event(exchange, event, transform, inspect, outcome)
        try:
            async for event in response.events(parser):
                await _send_event(exchange, event, transform, inspect, outcome)
        except ResponseTooLarge as exc:
            outcome.final = _too_large_error(exchange, exc)
            await send_chunk(exchange.send, encode(dumps(outcome.final).decode("utf-8")))

    if not cancel_on_disconnect:
        await pump()
        await end_stream(exchange.send)
        return outcome
    if await until_disconnect(exchange.receive, pump()):
        await end_stream(exchange.send)
    else:
        outcome.disconnected = True
        response.close()
    return outcome


async def _relay_chunks(
    exchange: Exchange, response: UpstreamResponse, headers: Headers, cancel_on_disconnect: bool
) -> Relayed:
    """Relay a body that is neither JSON nor SSE (e.g. JSON lines) chunk by chunk, to its end."""
    await exchange.send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [(b"content-type", response.headers.get("content-type", "").encode("latin-1")), *headers],
        }
    )

    async def pump() -> None:
        async for chunk in response.chunks():
            await send_chunk(exchange.send, chunk)

    outcome = Relayed(response.status)
    if not cancel_on_disconnect:
        await pump()
    elif not await until_disconnect(exchange.receive, pump()):
        outcome.disconnected = True
        response.close()
        return outcome
    await end_stream(exchange.send)
    return outcome


def _too_large_error(exchange: Exchange, exc: ResponseTooLarge) -> JSONObject:
    """The answer that ends a stream whose next event was too large to relay.

    For a `tools/call`, the same tool error result `calls.py` sends when nothing was relayed yet
    (the call ran); for anything else, a JSON-RPC error.
    """
    request = json_object(exchange.body) if exchange.body else None
    request_id = request.get("id") if request is not None else None
    request_id = request_id if isinstance(request_id, str | int) else None
    params = request.get("params") if request is not None else None
    if request is not None and request.get("method") == "tools/call" and isinstance(params, dict):
        meta = params.get("_meta")
        # Only 2026-07-28 requests carry the per-request envelope.
        era = Era.MODERN if isinstance(meta, dict) and PROTOCOL_VERSION_META in meta else Era.HANDSHAKE
        text = too_large_text(str(params.get("name")), exc.size, exc.limit)
        return result_response(request_id, tool_error_result(text, era=era))
    return error_response(request_id, INTERNAL_ERROR, f"{exc}; it was not relayed")


def _lone_answer(event: SSEEvent) -> JSONObject | None:
    """The JSON-RPC response an event carries, if it is one."""
    if event.comment is not None or not event.data:
        return None
    message = json_object(event.data)
    return message if message is not None and is_response(message) else None


async def _send_event(
    exchange: Exchange, event: SSEEvent, transform: Transform | None, inspect: bool, outcome: Relayed
) -> None:
    frame, message = _frame(event, transform, inspect)
    if message is not None and is_response(message):
        outcome.final = message
    await send_chunk(exchange.send, frame)


def _frame(event: SSEEvent, transform: Transform | None, inspect: bool) -> tuple[bytes, JSONObject | None]:
    if event.comment is not None:
        return comment(event.comment), None
    data: str = event.data
    message = None
    if (transform is not None or inspect) and data:
        message = json_object(data)
        if message is not None and transform is not None and is_response(message):
            message = transform(message)
            data = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    event_id = None if event.id is None else UPSTREAM_EVENT_PREFIX + event.id
    return encode(data, event_id=event_id, event=event.event, retry=event.retry), message


async def until_disconnect(receive: Receive, work: Coroutine[Any, Any, None]) -> bool:
    """Run `work` until it finishes (True) or the client disconnects first (False, work cancelled)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(wait_disconnect(receive))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, watcher):
            if not pending.done():
                pending.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)
    if task in done and not task.cancelled():
        task.result()  # re-raise a failure of the work itself
        return True
    return False


async def wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
