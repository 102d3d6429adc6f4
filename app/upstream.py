"""HTTP to the upstream MCP servers: one pooled aiohttp session, requests forwarded as bytes.

aiohttp rather than httpx because this is the hot path: measured here on the same loopback
request, httpx spent about 1.3 ms of CPU per request and aiohttp about 0.3 ms, and the gateway's
whole budget is about 1 ms.

What is forwarded is decided here and nowhere else: the agent's body bytes unchanged, the MCP
headers that describe them (`Accept`, `Content-Type`, `MCP-Protocol-Version`, `Mcp-Method`,
`Mcp-Name`, `Mcp-Param-*`), the upstream's own session id and resumption cursor (mapped by the
caller), and the credentials configured for the upstream. The agent's `Authorization`, cookies
and `Origin` never leave Airlock.

Bodies are read to their end, never "what is buffered so far": aiohttp's `StreamReader.read(n)`
returns as soon as any bytes arrive, which cut answers of a few hundred KB off at random (issue
10, class 3). Every answer up to `max_response_bytes` is read whole; a larger one raises
`ResponseTooLarge`, which says how large it was, so callers can tell the agent exactly that.

This module also keeps what the gateway learns from `tools/list` answers: each tool's annotations
and input schema, per upstream (the policy's `annotation_defaults` read them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from mcp.shared.inbound import X_MCP_HEADER_KEY

from app.config import UpstreamSettings
from app.jsonrpc import is_response, json_object
from app.protocol import MCP_METHOD, MCP_NAME, MCP_PROTOCOL_VERSION, MCP_SESSION_ID, PARAM_HEADER_PREFIX
from app.sse import EventTooLarge, SSEEvent, SSEParser
from app.tracing import upstream_span

DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024
_COUNT_LIMIT_FACTOR: Final = 4
"""An over-long body is read (and discarded) up to this many times the limit, to report its size."""
FORWARDED_HEADERS: Final = frozenset({"accept", "content-type", MCP_PROTOCOL_VERSION, MCP_METHOD, MCP_NAME})
USER_AGENT: Final = "airlock-gateway/0.1"
POOL_IDLE_SECONDS: Final = 2.0


def forwardable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The agent's request headers that describe the MCP message (names lowercased)."""
    return {
        name: value
        for name, value in headers.items()
        if name in FORWARDED_HEADERS or name.startswith(PARAM_HEADER_PREFIX)
    }


class UpstreamUnavailable(Exception):
    """Airlock could not connect to the upstream: the request was not delivered."""


class ResponseTooLarge(Exception):
    """The upstream's answer (or one event of it) is larger than `max_response_bytes`."""

    def __init__(self, size: int | None, limit: int) -> None:
        self.size = size
        """The answer's size in bytes when known (its Content-Length, or what was read), else None."""
        self.limit = limit
        size_text = f"{size} bytes" if size is not None else f"more than {limit} bytes"
        super().__init__(f"the upstream's answer ({size_text}) exceeds max_response_bytes ({limit} bytes)")


class UpstreamResponse:
    """A streaming response from the upstream. Read it once: `read()`, `answer()`, `events()` or `chunks()`."""

    def __init__(self, response: aiohttp.ClientResponse, max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self._response = response
        self.status = response.status
        self.headers = response.headers
        self.content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        self.max_bytes = max_bytes

    @property
    def is_sse(self) -> bool:
        return self.content_type == "text/event-stream"

    @property
    def is_json(self) -> bool:
        return self.content_type == "application/json"

    async def read(self) -> bytes:
        """The whole body, to its end.

        Raises:
            ResponseTooLarge: the body is longer than `max_bytes` (nothing of it is returned).
        """
        declared = self._response.content_length
        if declared is not None and declared > self.max_bytes:
            self._response.close()
            raise ResponseTooLarge(declared, self.max_bytes)
        chunks: list[bytes] = []
        size = 0
        while chunk := await self._response.content.readany():
            size += len(chunk)
            if size > self.max_bytes:
                raise ResponseTooLarge(await self._count_rest(size), self.max_bytes)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _count_rest(self, size: int) -> int | None:
        """Read and discard the rest of an over-long body, to say how long it was (None: too long to count)."""
        while size <= _COUNT_LIMIT_FACTOR * self.max_bytes:
            chunk = await self._response.content.readany()
            if not chunk:
                return size
            size += len(chunk)
        self._response.close()
        return None

    def parser(self) -> SSEParser:
        """An SSE parser that refuses events larger than this response may be."""
        return SSEParser(max_event_bytes=self.max_bytes)

    async def events(self, parser: SSEParser | None = None) -> AsyncIterator[SSEEvent]:
        """The stream's events (continuing `parser`'s state when given).

        Raises:
            ResponseTooLarge: one event is larger than `max_bytes`.
        """
        parser = parser or self.parser()
        async for chunk in self._response.content.iter_any():
            for event in self.feed(parser, chunk):
                yield event

    def feed(self, parser: SSEParser, chunk: bytes) -> list[SSEEvent]:
        """Parse `chunk`; an over-long event raises `ResponseTooLarge` (not the parser's `ValueError`)."""
        try:
            return list(parser.feed(chunk))
        except EventTooLarge:
            # How long the event would have been is not known without reading it all: say "more than".
            self._response.close()
            raise ResponseTooLarge(None, self.max_bytes) from None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, chunk by chunk, to its end (for streams that are not SSE)."""
        async for chunk in self._response.content.iter_any():
            yield chunk

    async def drain(self, timeout: float) -> None:
        """Read the rest of the body (for at most `timeout` s) so the connection can be reused.

        aiohttp closes, rather than pools, a connection whose response was released unread.
        """
        content = self._response.content
        while content.read_nowait():
            pass
        if content.at_eof():
            return  # the end had already arrived with the answer: no timer to arm (issue 12)
        try:
            async with asyncio.timeout(timeout):
                while await content.readany():
                    pass
        except TimeoutError:
            self._response.close()

    def read_buffered(self) -> bytes:
        """What of the body has already arrived and not been read (b"" when nothing has), without waiting."""
        return self._response.content.read_nowait()

    async def read_chunk(self) -> bytes:
        """The next bytes of the body (b"" at its end). Safe to cancel: nothing is lost."""
        return await self._response.content.readany()

    async def answer(self) -> dict[str, Any] | None:
        """The JSON-RPC response this answer carries (read whole, JSON or SSE), or None.

        Raises:
            ResponseTooLarge: the answer is larger than `max_bytes`.
        """
        if self.is_sse:
            async for event in self.events():
                if event.comment is None and event.data:
                    message = json_object(event.data)
                    if message is not None and is_response(message):
                        return message
            return None
        return json_object(await self.read())

    def close(self) -> None:
        self._response.close()


@dataclass
class ToolCatalog:
    """What `tools/list` said about each tool of one upstream (latest answer wins).

    `listed` turns true with the first `tools/list` answer seen. An input schema equal to the one
    already known is kept as the same object, so validators compiled from it (keyed on identity,
    see `app/policy/arguments.py`) survive an agent listing the tools again.
    """

    annotations: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)
    input_schemas: dict[str, Any] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    """Each tool's `description`, as the upstream wrote it (the inbox shows it to reviewers)."""
    header_free: set[str] = field(default_factory=set)
    """Tools whose input schema has no `x-mcp-header` key anywhere, so no `Mcp-Param-*` header can be
    checked against it: the gateway skips the SDK's validator, which walks the whole schema twice
    per call to find that out (issue 12). A tool not in the set is always validated."""
    listed: bool = False

    def learn(self, tools: list[Any]) -> None:
        for tool in tools:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                name = tool["name"]
                annotations = tool.get("annotations")
                self.annotations[name] = annotations if isinstance(annotations, dict) else None
                description = tool.get("description")
                if isinstance(description, str):
                    self.descriptions[name] = description
                else:
                    self.descriptions.pop(name, None)
                schema = tool.get("inputSchema")
                if self.input_schemas.get(name) != schema:
                    self.input_schemas[name] = schema
                if _mentions_key(schema, X_MCP_HEADER_KEY):
                    self.header_free.discard(name)
                else:
                    self.header_free.add(name)
        self.listed = True


def _mentions_key(value: Any, key: str) -> bool:
    """Whether any object within `value` (at any depth, in any list) has `key` as a key."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if key in node:
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


class Upstream:
    """One configured upstream: where it is, how to reach it, and what its tools are."""

    def __init__(
        self,
        settings: UpstreamSettings,
        session: aiohttp.ClientSession,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.settings = settings
        self.max_response_bytes = max_response_bytes
        self.name = settings.name
        self.url = settings.url
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=settings.timeout_seconds)
        self.catalog = ToolCatalog()
        self._catalog_lock = asyncio.Lock()

    def _headers(self, headers: Mapping[str, str], traced: Mapping[str, str]) -> dict[str, str]:
        merged = {"user-agent": USER_AGENT, **headers, **traced}
        merged.update(self.settings.headers)
        return merged

    @asynccontextmanager
    async def request(
        self, method: str, *, headers: Mapping[str, str], body: bytes | None = None, fresh_connection: bool = False
    ) -> AsyncIterator[UpstreamResponse]:
        """Send one HTTP request upstream; the response is streamed and released on exit.

        Args:
            fresh_connection: send it on a new connection rather than a pooled one. For calls that
                must run at most once: a pooled connection the upstream is closing at that moment
                resets, and then nobody can tell whether the call ran (`outcome_unknown`).

        Raises:
            UpstreamUnavailable: the connection could not be made (nothing was delivered).
        """
        # No exit stack here: this runs once per forwarded call, and a plain `with` costs less (issue 12).
        with upstream_span(self.name, method) as traced:  # empty unless [tracing] is on
            owned = new_client_session(force_close=True) if fresh_connection else None
            try:
                response = await self._send(owned or self._session, method, self._headers(headers, traced), body)
                try:
                    yield UpstreamResponse(response, self.max_response_bytes)
                finally:
                    response.release()
            finally:
                if owned is not None:
                    await owned.close()

    async def _send(
        self, session: aiohttp.ClientSession, method: str, headers: Mapping[str, str], body: bytes | None
    ) -> aiohttp.ClientResponse:
        try:
            return await session.request(
                method,
                self.url,
                data=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except (aiohttp.ClientConnectorError, aiohttp.ClientConnectorCertificateError) as exc:
            raise UpstreamUnavailable(f"cannot connect to upstream {self.name!r}: {exc.os_error}") from None

    async def open_session(self, initialize_params: str, protocol_version: str) -> str | None:
        """Run the handshake-era `initialize` upstream with the agent's original parameters.

        Returns the upstream's new session id (None for an upstream without sessions).

        Raises:
            UpstreamUnavailable: cannot connect, or the upstream refused to initialize.
        """
        body = (
            '{"jsonrpc":"2.0","id":"airlock-initialize","method":"initialize","params":' + initialize_params + "}"
        ).encode("utf-8")
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        async with self.request("POST", headers=headers, body=body) as response:
            if response.status != 200:
                raise UpstreamUnavailable(f"upstream {self.name!r} refused initialize (HTTP {response.status})")
            session_id = response.headers.get(MCP_SESSION_ID)
            await _discard(response)
        headers[MCP_PROTOCOL_VERSION] = protocol_version
        if session_id:
            headers[MCP_SESSION_ID] = session_id
        async with self.request(
            "POST", headers=headers, body=b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
        ) as response:
            await _discard(response)
        return session_id

    async def fetch_catalog(
        self, envelope_headers: Mapping[str, str], params_meta: Mapping[str, Any] | None, session_id: str | None
    ) -> None:
        """Ask the upstream for its tools (all pages) and learn their annotations and input schemas.

        Used when a policy needs a tool's annotations, or a call's arguments need checking against
        an input schema, before any `tools/list` relay has shown them.
        """
        async with self._catalog_lock:
            cursor: str | None = None
            for page in range(100):
                params: dict[str, Any] = {}
                if params_meta:
                    params["_meta"] = dict(params_meta)
                if cursor:
                    params["cursor"] = cursor
                body = json.dumps(
                    {"jsonrpc": "2.0", "id": f"airlock-tools-{page}", "method": "tools/list", "params": params}
                ).encode()
                headers = {**envelope_headers, MCP_METHOD: "tools/list"}
                headers.pop(MCP_NAME, None)
                if session_id:
                    headers[MCP_SESSION_ID] = session_id
                result = await self._call(body, headers)
                tools = result.get("tools") if isinstance(result, dict) else None
                if not isinstance(tools, list):
                    return
                self.catalog.learn(tools)
                cursor = result.get("nextCursor")
                if not isinstance(cursor, str):
                    return

    async def _call(self, body: bytes, headers: Mapping[str, str]) -> Any:
        """One request whose JSON-RPC result is read whole; None on any error."""
        async with self.request("POST", headers=headers, body=body) as response:
            if response.status != 200:
                return None
            answer = await response.answer()
        return None if answer is None else answer.get("result")


async def _discard(response: UpstreamResponse) -> None:
    """Read a body nobody needs to its end (so the connection is reused); its size does not matter."""
    with contextlib.suppress(ResponseTooLarge):
        await response.read()


def new_client_session(*, force_close: bool = False) -> aiohttp.ClientSession:
    """The process-wide pool for upstream traffic (no cookies, no environment proxies).

    Idle connections are dropped after `POOL_IDLE_SECONDS`, well before common servers close them
    (uvicorn and Node.js after 5 s): a request written on a connection the server is closing at
    that moment is reset, and the client cannot tell whether the server read it.
    """
    connector = aiohttp.TCPConnector(
        limit=0,
        limit_per_host=256,
        ttl_dns_cache=300,
        keepalive_timeout=None if force_close else POOL_IDLE_SECONDS,
        force_close=force_close,
    )
    return aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, auto_decompress=True
    )
