"""The access log: one line per HTTP request, and the request's correlation fields for every line.

`AccessLog` is an ASGI middleware. For each HTTP request it opens the request's log fields
(`app/logs.py`): a request id (the client's or proxy's `X-Request-ID` when it is a plain token,
else a new one, echoed back in the response's `X-Request-ID`), and the upstream for
`/mcp/{upstream}`. With `[logging] access_log = true` it writes, when the response ends, one line
on the `airlock.access` logger with the method, the path, the status, the duration, the client
address and the fields the request collected (`agent`, `tool`, `decision`, `approval_id`).

What it never logs, by construction: the query string (it may carry a secret in a link), any
header (bearer tokens, cookies, Slack signatures) and any body (tool arguments). The agent is
its name, bound by the endpoint after authentication, never the token.

`installed(settings)` says whether the middleware is needed at all: with the text format, no
access log and no tracing there is nothing for it to do, and the hot path does not pay for it.
The client address is the one uvicorn reports: behind a proxy listed in `[server]
forwarded_allow_ips` that is the `X-Forwarded-For` address, otherwise the peer's.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any, Final

from starlette.middleware import Middleware

from app.config import Settings
from app.logs import FIELDS_ATTRIBUTE, request_fields
from app.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("airlock.access")

REQUEST_ID_HEADER: Final = b"x-request-id"
_REQUEST_ID: Final = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")
_MCP_PREFIX: Final = "/mcp/"


def installed(settings: Settings) -> bool:
    """Whether requests need the middleware: JSON logs (for their fields), an access log, or tracing."""
    return settings.logging.format == "json" or settings.logging.access_log or settings.tracing.enabled


def middleware(settings: Settings) -> list[Middleware]:
    """For Starlette's `middleware=`: `[AccessLog]` when `installed`, else nothing."""
    return [Middleware(AccessLog, enabled=settings.logging.access_log)] if installed(settings) else []


def wrap(app: ASGIApp, settings: Settings) -> ASGIApp:
    """`app` inside `AccessLog` when `installed`, else `app` itself."""
    return AccessLog(app, enabled=settings.logging.access_log) if installed(settings) else app


class AccessLog:
    """Open each HTTP request's log fields; with `enabled`, log one line when its response ends."""

    def __init__(self, app: ASGIApp, *, enabled: bool) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        status: list[int] = []

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                message = {**message, "headers": [*message.get("headers", []), (REQUEST_ID_HEADER, request_id)]}
            await send(message)

        started = time.perf_counter()
        with request_fields(request_id=request_id.decode("ascii"), upstream=_upstream(scope["path"])) as fields:
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                if self.enabled:
                    _log(scope, status[0] if status else 500, time.perf_counter() - started, fields)


def _request_id(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _REQUEST_ID.match(value):
            return bytes(value)
    return secrets.token_hex(8).encode("ascii")


def _upstream(path: str) -> str | None:
    if not path.startswith(_MCP_PREFIX):
        return None
    name = path[len(_MCP_PREFIX) :]
    return name if name and "/" not in name else None


def _log(scope: Scope, status: int, seconds: float, fields: dict[str, Any]) -> None:
    client = scope.get("client")
    line = {
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "duration_ms": round(seconds * 1000.0, 3),
        "client": client[0] if client else None,
    }
    named = " ".join(f"{key}={fields[key]}" for key in ("agent", "tool", "decision", "approval_id") if key in fields)
    logger.info(
        "%s %s %d %.1f ms%s",
        line["method"],
        line["path"],
        status,
        line["duration_ms"],
        f" {named}" if named else "",
        extra={FIELDS_ATTRIBUTE: line},
    )
