"""CPU µs per call of Airlock's own wrappers on the allowed-call path, each alone and in process.

Why this exists beside `bench.run`: on a shared 2-core machine (load average 8-10 while these
figures were taken) the end-to-end CPU per call of one process swings by ±0.5 ms from round to
round, far more than a change of a few microseconds. Here each piece runs alone against stubs
(no sockets, no other process), so what is counted is the piece's own CPU time (`time.process_time`
over many iterations). Run it as a script so it measures whichever `app` is importable; with
`PYTHONPATH=<another checkout>` it measures that tree, so the same file compares two trees:

    .venv/bin/python bench/hot_path.py                         # this checkout
    PYTHONPATH=/path/to/base .venv/bin/python bench/hot_path.py  # another one

Pieces:
- `upstream_request`: entering and leaving `Upstream.request` (tracing off) around a stub
  aiohttp session that answers at once: what Airlock adds around each upstream request.
- `param_headers`: the `Mcp-Param-*` header checks of a 2026-07-28 `tools/call` whose tool's
  schema declares no `x-mcp-header` (the SDK server's `em_get_task`).
- `media_types`: the `Accept` and `Content-Type` checks of every POST.
- `lone_answer`: relaying the commonest upstream answer, a POST's event stream holding only the
  JSON-RPC response and then its end, already received (`relay()` with a stub agent side).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from app.config import UpstreamSettings
from app.upstream import Upstream

ANSWER = (
    b"event: message\r\ndata: "
    + json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "x" * 900}]}}).encode()
    + b"\r\n\r\n"
)


class _StubResponse:
    """What `Upstream.request` and `relay` read of an aiohttp response: an SSE answer, fully received."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.status = 200
        self.headers = CIMultiDictProxy(CIMultiDict({"content-type": "text/event-stream"}))
        self.content_length = None
        protocol: Any = _Protocol()
        self.content = aiohttp.StreamReader(protocol, 2**16, loop=loop)
        self.content.feed_data(ANSWER)
        self.content.feed_eof()

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Protocol:
    """The least a `StreamReader` needs of its protocol."""

    _reading_paused = False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self, resume_parser: bool = True) -> None:
        pass


class _StubSession:
    async def request(self, method: str, url: str, **_: Any) -> _StubResponse:
        return _StubResponse(asyncio.get_running_loop())


def _upstream() -> Upstream:
    settings = UpstreamSettings(name="bench", url="http://127.0.0.1:1/mcp", policy=Path("policy.json"))
    session: Any = _StubSession()
    return Upstream(settings, session)


async def upstream_request() -> Callable[[], Awaitable[None]]:
    upstream = _upstream()
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}

    async def once() -> None:
        async with upstream.request("POST", headers=headers, body=b"{}"):
            pass

    return once


async def lone_answer() -> Callable[[], Awaitable[None]]:
    from app.gateway.relay import relay

    upstream = _upstream()
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}

    async def send(_: Any) -> None:
        pass

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    class _Exchange:
        method = "POST"
        body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{}}}'

    exchange: Any = _Exchange()
    exchange.send, exchange.receive = send, receive

    async def once() -> None:
        async with upstream.request("POST", headers=headers, body=exchange.body) as response:
            await relay(exchange, response, inspect=True)

    return once


async def param_headers() -> Callable[[], Awaitable[None]]:
    """`Mcp-Param-*` checks of a 2026-07-28 `tools/call` whose tool declares none (the SDK server's schema)."""
    from app.gateway.modern import _check_param_headers
    from app.jsonrpc import parse_message

    upstream = _upstream()
    schema = {
        "type": "object",
        "properties": {"task_id": {"type": "string", "description": "UUID of the task", "title": "Task Id"}},
        "required": ["task_id"],
        "title": "get_taskArguments",
    }
    upstream.catalog.learn([{"name": "em_get_task", "inputSchema": schema}])
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"em_get_task","arguments":{"task_id":"x"}}}'
    message = parse_message(body)
    headers = {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "em_get_task"}

    class _Exchange:
        pass

    exchange: Any = _Exchange()
    exchange.upstream, exchange.headers, exchange.raw_headers = upstream, headers, list(headers.items())

    async def once() -> None:
        _check_param_headers(exchange, message)

    return once


async def media_types() -> Callable[[], Awaitable[None]]:
    """The `Accept` and `Content-Type` checks every POST passes (`app/gateway/endpoint.py`)."""
    from app.gateway.endpoint import _accepts, _is_utf8_json

    accept, content_type = "application/json, text/event-stream", "application/json"

    async def once() -> None:
        _accepts(accept, "application/json")
        _accepts(accept, "text/event-stream")
        _is_utf8_json(content_type)

    return once


PIECES: dict[str, Callable[[], Awaitable[Callable[[], Awaitable[None]]]]] = {
    "upstream_request": upstream_request,
    "lone_answer": lone_answer,
    "param_headers": param_headers,
    "media_types": media_types,
}


async def cost(piece: str, iterations: int) -> float:
    """CPU µs per call of `piece`, after a warm-up."""
    once = await PIECES[piece]()
    for _ in range(iterations // 10):
        await once()
    start = time.process_time()
    for _ in range(iterations):
        await once()
    return (time.process_time() - start) * 1e6 / iterations


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/hot_path.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    parser.add_argument("pieces", nargs="*", default=list(PIECES))
    args = parser.parse_args()
    import app

    results = {piece: round(asyncio.run(cost(piece, args.iterations)), 2) for piece in args.pieces}
    print(json.dumps({"app": str(Path(app.__file__).parent), "cpu_us_per_call": results}))


if __name__ == "__main__":
    main()
