"""A fake Slack Web API on a loopback port, for the real `slack_sdk` `AsyncWebClient` to talk to.

It routes `/api/{method}`, checks the bot token, records every call as `(method, headers, body)`,
and answers from a per-method script of `Reply` values, else as Slack would for the methods Airlock
uses (`chat.postMessage` assigns a `ts`, `usergroups.users.list` lists `usergroups[id]`). It also
keeps the latest text and blocks of each message, so tests can read what a channel shows.

`fail_all(reply)` makes every call fail (Slack down) until `recover()`; a `Reply.hang()` holds the
request open until `recover()` or shutdown, the way an unreachable Slack leaves the client waiting.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.net import serve

BOT_TOKEN = "xoxb-airlock-test-token"


@dataclass(frozen=True)
class Call:
    method: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False

    @classmethod
    def ok(cls, **data: Any) -> Reply:
        return cls(body={"ok": True, **data})

    @classmethod
    def error(cls, error: str, status: int = 200) -> Reply:
        return cls(status=status, body={"ok": False, "error": error})

    @classmethod
    def ratelimited(cls, retry_after: int) -> Reply:
        return cls(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": str(retry_after)})

    @classmethod
    def server_error(cls, status: int = 503) -> Reply:
        return cls(status=status, body=None)

    @classmethod
    def hanging(cls) -> Reply:
        return cls(hang=True)


class FakeSlack:
    def __init__(self) -> None:
        self.url = ""
        self.calls: list[Call] = []
        self.usergroups: dict[str, list[str]] = {}
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._scripts: dict[str, deque[Reply]] = {}
        self._failing: Reply | None = None
        self._recovered = asyncio.Event()
        self._next_ts = 0
        self.app = Starlette(routes=[Route("/api/{method}", self._handle, methods=["GET", "POST"])])

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def script(self, method: str, *replies: Reply) -> None:
        """Answer the next calls to `method` with `replies`, in order (then as usual)."""
        self._scripts.setdefault(method, deque()).extend(replies)

    def fail_all(self, reply: Reply) -> None:
        """Answer every call with `reply` until `recover()`."""
        self._failing = reply
        self._recovered.clear()

    def recover(self) -> None:
        self._failing = None
        self._recovered.set()

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """The latest `chat.postMessage` / `chat.update` body of one message."""
        return self.messages[(channel, ts)]

    async def _handle(self, request: Request) -> Response:
        method = request.path_params["method"]
        body = await _body(request)
        self.calls.append(Call(method, dict(request.headers), body, time.monotonic()))
        if request.headers.get("authorization") != f"Bearer {BOT_TOKEN}":
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        reply = self._failing or self._next_scripted(method)
        if reply is None:
            return JSONResponse(self._default(method, body))
        if reply.hang:
            await self._recovered.wait()
            return Response(status_code=503)
        if reply.body is None:
            return Response("<html>Slack is down</html>", status_code=reply.status, headers=reply.headers,
                            media_type="text/html")
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)

    def _next_scripted(self, method: str) -> Reply | None:
        queue = self._scripts.get(method)
        return queue.popleft() if queue else None

    def _default(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method == "chat.postMessage":
            self._next_ts += 1
            ts = f"{1_700_000_000 + self._next_ts}.{self._next_ts:06d}"
            channel = str(body["channel"])
            self.messages[(channel, ts)] = body
            return {"ok": True, "channel": channel, "ts": ts, "message": {"ts": ts, "text": body.get("text")}}
        if method == "chat.update":
            key = (str(body["channel"]), str(body["ts"]))
            if key not in self.messages:
                return {"ok": False, "error": "message_not_found"}
            self.messages[key] = body
            return {"ok": True, "channel": key[0], "ts": key[1]}
        if method == "usergroups.users.list":
            group = str(body.get("usergroup", ""))
            if group not in self.usergroups:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": self.usergroups[group]}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{time.time():.6f}"}
        return {"ok": True}

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeSlack]:
        async with serve(self.app) as url:
            self.url = url
            try:
                yield self
            finally:
                self.recover()  # let hanging requests finish so the server can stop


async def _body(request: Request) -> dict[str, Any]:
    if request.method == "GET":
        return {key: values[-1] for key, values in parse_qs(request.url.query).items()}
    raw = await request.body()
    if raw.startswith(b"{"):
        parsed: dict[str, Any] = json.loads(raw)
        return parsed
    return {key: values[-1] for key, values in parse_qs(raw.decode()).items()}
