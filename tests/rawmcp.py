"""A deliberately low-level MCP client for tests that need the wire itself: exact bytes, dropped
connections, `Last-Event-ID`, headers the SDK would never send."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from app.sse import SSEEvent, SSEParser

ACCEPT = "application/json, text/event-stream"
LEGACY_VERSION = "2025-11-25"
MODERN_VERSION = "2026-07-28"


def modern_envelope() -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "0"},
    }


def modern_headers(token: str, method: str, name: str | None = None) -> dict[str, str]:
    """The headers of a 2026-07-28 request from an agent holding `token`."""
    headers = {
        "authorization": f"Bearer {token}",
        "accept": ACCEPT,
        "content-type": "application/json",
        "mcp-protocol-version": MODERN_VERSION,
        "mcp-method": method,
    }
    if name is not None:
        headers["mcp-name"] = name
    return headers


class RawSession:
    """One handshake-era session over plain HTTP."""

    def __init__(self, http: httpx.AsyncClient, url: str, token: str) -> None:
        self.http = http
        self.url = url
        self.token = token
        self.session_id: str | None = None

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {
            "authorization": f"Bearer {self.token}",
            "accept": ACCEPT,
            "content-type": "application/json",
            "mcp-protocol-version": LEGACY_VERSION,
        }
        if self.session_id:
            headers["mcp-session-id"] = self.session_id
        headers.update(extra)
        return headers

    async def initialize(self) -> dict[str, Any]:
        body = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": LEGACY_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        }
        headers = self.headers()
        del headers["mcp-protocol-version"]
        response = await self.http.post(self.url, json=body, headers=headers)
        response.raise_for_status()
        self.session_id = response.headers["mcp-session-id"]
        await self.http.post(
            self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=self.headers()
        )
        result: dict[str, Any] = response.json()
        return result

    @asynccontextmanager
    async def stream(self, method: str, body: Any = None, **headers: str) -> AsyncIterator[EventReader]:
        content = None if body is None else json.dumps(body).encode()
        async with self.http.stream(method, self.url, content=content, headers=self.headers(**headers)) as response:
            yield EventReader(response)


class EventReader:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._parser = SSEParser()
        self._chunks = response.aiter_raw()
        self._ready: list[SSEEvent] = []

    async def next_event(self, *, skip_comments: bool = True) -> SSEEvent:
        while True:
            while self._ready:
                event = self._ready.pop(0)
                if not (skip_comments and event.comment is not None):
                    return event
            chunk = await self._chunks.__anext__()
            self._ready.extend(self._parser.feed(chunk))

    async def next_message(self) -> dict[str, Any]:
        while True:
            event = await self.next_event()
            if event.data:
                message: dict[str, Any] = json.loads(event.data)
                return message


async def final_message(response: httpx.Response, *, timeout: float = 20) -> dict[str, Any]:
    """The JSON-RPC response on an SSE stream, skipping notifications, requests and priming events."""
    reader = EventReader(response)
    async with asyncio.timeout(timeout):
        while True:
            message = await reader.next_message()
            if "id" in message and ("result" in message or "error" in message):
                return message
