"""An upstream MCP server whose answers are as large as the test asks, written in many small chunks.

Raw ASGI rather than the SDK, so a test controls every byte: the tool `big_text` (and its twin
`big_text_reviewed`, for an `approve` rule) answers with a text of `arguments.size` characters,
as `application/json` or as one SSE event (`arguments.mode`: "json" or "sse"; "sse-after-log"
sends a log notification first, so a relay commits to the stream before the answer), in chunks of
`CHUNK` bytes, so a reader that stops at the first buffered bytes gets a truncated answer.
`subscriptions/listen` answers with JSON lines that the test writes one by one (`lines`).
It speaks just enough of both eras: `initialize` (with a session id), notifications (202),
`tools/call`, `DELETE`.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any, Final

from app.types import Receive, Scope, Send

CHUNK: Final = 16 * 1024
SESSION_ID: Final = "big-session-1"
_PATTERN: Final = "0123456789 café ☕ abcdefghijklmnopqrstuvwxyz\n"


def big_text(size: int) -> str:
    """`size` characters of varied text (multi-byte UTF-8 and a newline included)."""
    return (_PATTERN * (size // len(_PATTERN) + 1))[:size]


class BigAnswerUpstream:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.answers: list[bytes] = []
        """The exact bytes of each JSON-RPC answer to a `tools/call` (the SSE event's data for "sse")."""
        self.lines: asyncio.Queue[bytes | None] = asyncio.Queue()
        """JSON lines of the `subscriptions/listen` answer; `None` ends it."""
        self.instructions = ""
        """The `instructions` of the `initialize` answer (as large as a test wants)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if scope["method"] != "POST":
            await _send(send, 200, b"", b"application/json")
            return
        request: dict[str, Any] = json.loads(body)
        method = request.get("method")
        if "id" not in request:
            await _send(send, 202, b"", b"application/json")
        elif method == "initialize":
            result = {
                "protocolVersion": request["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "big-answers", "version": "0"},
                "instructions": self.instructions,
            }
            await _send(
                send,
                200,
                _answer(request["id"], result),
                b"application/json",
                [(b"mcp-session-id", SESSION_ID.encode())],
            )
        elif method == "tools/call":
            await self._call(request, send)
        elif method == "subscriptions/listen":
            await self._listen(send)
        else:
            await _send(send, 200, _answer(request["id"], {}), b"application/json")

    async def _call(self, request: dict[str, Any], send: Send) -> None:
        params = request["params"]
        arguments = params.get("arguments") or {}
        self.calls[params["name"]] += 1
        result = {"content": [{"type": "text", "text": big_text(int(arguments["size"]))}], "isError": False}
        if "io.modelcontextprotocol/protocolVersion" in (params.get("_meta") or {}):
            result["resultType"] = "complete"
        answer = _answer(request["id"], result)
        self.answers.append(answer)
        if arguments.get("mode") in ("sse", "sse-after-log"):
            log = b'{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"working"}}'
            first = b"event: message\r\ndata: " + log + b"\r\n\r\n" if arguments["mode"] == "sse-after-log" else b""
            await _send(send, 200, first + b"event: message\r\ndata: " + answer + b"\r\n\r\n", b"text/event-stream")
        else:
            await _send(send, 200, answer, b"application/json")

    async def _listen(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/jsonl")]})
        while (line := await self.lines.get()) is not None:
            await send({"type": "http.response.body", "body": line, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def _answer(request_id: Any, result: dict[str, Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}, ensure_ascii=False).encode("utf-8")


async def _send(
    send: Send, status: int, body: bytes, content_type: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send `body` in `CHUNK`-sized pieces (no Content-Length), yielding to the loop between them."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), *(headers or [])],
        }
    )
    for start in range(0, len(body), CHUNK):
        await send({"type": "http.response.body", "body": body[start : start + CHUNK], "more_body": True})
        await asyncio.sleep(0)
    await send({"type": "http.response.body", "body": b""})
