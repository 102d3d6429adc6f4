"""Raw ASGI answers the gateway sends itself: JSON bodies, JSON-RPC errors, SSE response heads.

Raw `send` calls rather than Starlette `Response` objects, because these are on every call's path
and the gateway already knows exactly which bytes it wants to send.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from app.jsonrpc import dumps, error_response
from app.types import JSON, RequestId, Send

Headers = Sequence[tuple[bytes, bytes]]

SSE_HEADERS: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
)


async def send_body(
    send: Send, status: int, body: bytes, headers: Headers = (), content_type: bytes = b"application/json"
) -> None:
    head = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, value: JSON, headers: Headers = ()) -> None:
    await send_body(send, status, dumps(value), headers)


async def send_error(
    send: Send,
    status: int,
    code: int,
    message: str,
    *,
    request_id: RequestId | None = None,
    data: JSON = None,
    headers: Headers = (),
) -> None:
    """A JSON-RPC error body with an HTTP status (`id: null` when the request's id is unknown)."""
    await send_json(send, status, error_response(request_id, code, message, data), headers)


async def send_empty(send: Send, status: int, headers: Headers = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0"), *headers]})
    await send({"type": "http.response.body", "body": b""})


async def start_sse(send: Send, headers: Headers = ()) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *headers]})


async def send_chunk(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def end_stream(send: Send) -> None:
    await send({"type": "http.response.body", "body": b"", "more_body": False})
