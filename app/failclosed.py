"""Fail closed: an unexpected error becomes a clear refusal, never a 500 with a traceback.

Wraps the whole application. When something Airlock depends on fails (the database is down or
out of connections, a bug), a request that has not started its response gets 503 with a JSON
body saying that nothing was forwarded, in the shape its caller understands: a JSON-RPC error on
`/mcp/…`, `{"error": …}` elsewhere. The exception is logged with its traceback for the operator;
the client never sees internals. A response already under way cannot be changed: it is cut off,
which the client sees as a dropped connection (and a held call can be resumed or retried).
"""

from __future__ import annotations

import logging

from app.jsonrpc import dumps, error_response
from app.protocol import INTERNAL_ERROR
from app.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("airlock")


class FailClosed:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("request %s %s failed", scope.get("method"), scope.get("path"))
            if started:
                raise
            await _refuse(scope, send)


async def _refuse(scope: Scope, send: Send) -> None:
    reason = "Airlock could not complete this request (an internal service is unavailable); nothing was forwarded"
    if str(scope.get("path", "")).startswith("/mcp/"):
        body = dumps(error_response(None, INTERNAL_ERROR, reason))
    else:
        body = dumps({"error": reason})
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
