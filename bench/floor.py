"""`python -m bench.floor --port P --upstream URL --token T --allow TOOL`: the floor a gateway cannot go below.

Job: a minimal MCP proxy doing only the work any guarding gateway must do on an allowed call, run
in the same rounds as Airlock so the benchmark shows how far Airlock is from it (issue 12):

1. check the bearer token (a dict lookup);
2. parse the JSON-RPC body once;
3. a cached policy decision (a set of allowed tool names);
4. forward the body on a kept-alive aiohttp connection;
5. relay the upstream's whole answer to the agent in one write (an SSE answer is read to its end
   and passed on as it came).

It is served by uvicorn (as Airlock is) and forwards with aiohttp (as Airlock does), so the gap
to Airlock is Airlock's own work, not its libraries'.

Boundary, on purpose: nothing else. No sessions of its own (the upstream's `Mcp-Session-Id`
passes through), no streaming, no limits, no audit, no approvals, no error hygiene beyond a
refusal; a benchmark fixture, never a gateway.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import aiohttp
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HEALTH_PATH: Final = "/healthz"
# Request headers the upstream needs; everything else (the agent's token above all) stays here.
FORWARDED: Final = frozenset(
    {b"content-type", b"accept", b"mcp-session-id", b"mcp-protocol-version", b"mcp-method", b"mcp-name"}
)
RELAYED: Final = ("content-type", "mcp-session-id")


class Floor:
    """The ASGI app: `/healthz`, and every other path proxied to one upstream URL."""

    def __init__(self, upstream: str, tokens: dict[str, str], allowed: frozenset[str]) -> None:
        if not tokens:
            raise ValueError("the floor needs at least one agent token")
        self.upstream, self.allowed = upstream, allowed
        self.bearers = {f"Bearer {token}".encode(): agent for token, agent in tokens.items()}
        self.http: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["path"] == HEALTH_PATH:
            await _answer(send, 200, b"application/json", b"{}")
        else:
            await self._proxy(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.http is not None:
                    await self.http.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        if headers.get(b"authorization") not in self.bearers:
            await _answer(send, 401, b"application/json", b'{"error":"invalid_token"}')
            return
        body = await _read_body(receive)
        refusal = self._refusal(body) if body else None
        if refusal is not None:
            await _answer(send, 200, b"application/json", refusal)
            return
        assert self.http is not None
        forward = {k.decode(): v.decode() for k, v in headers.items() if k in FORWARDED}
        async with self.http.request(scope["method"], self.upstream, data=body, headers=forward) as response:
            payload = await response.read()
            relayed = [(k.encode(), response.headers[k].encode()) for k in RELAYED if k in response.headers]
        await send({"type": "http.response.start", "status": response.status, "headers": relayed})
        await send({"type": "http.response.body", "body": payload})

    def _refusal(self, body: bytes) -> bytes | None:
        """A JSON-RPC error for a `tools/call` the policy does not allow; None to forward."""
        message = json.loads(body)
        if not isinstance(message, dict) or message.get("method") != "tools/call":
            return None
        if message.get("params", {}).get("name") in self.allowed:
            return None
        error = {"code": -32602, "message": "refused by policy"}
        return json.dumps({"jsonrpc": "2.0", "id": message.get("id"), "error": error}).encode()


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the upstream's MCP URL")
    parser.add_argument("--token", required=True, help="the one agent token accepted")
    parser.add_argument("--allow", action="append", default=[], help="a tool name the policy allows (repeatable)")
    args = parser.parse_args(argv)
    app = Floor(args.upstream, {args.token: "bench-agent"}, frozenset(args.allow))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
