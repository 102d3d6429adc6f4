"""The HTTP server's limits (`[server]`): request timeout, connection cap, keep-alive timeout.

Provenance: Airlock-defined (issue 10, class 5, "One agent cannot take what others need"). Raw
sockets against real uvicorn on loopback: Airlock in process for the request timeout (so its log
can be read), and `airlock serve` as a child process for the uvicorn options it applies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.asgi import create_app
from app.config import ServerSettings, Settings, settings_from_document
from app.demo.upstream import DemoMarket
from app.errors import ConfigError
from app.limits import RequestTimeout, uvicorn_limits
from tests.harness import UPSTREAM, AirlockUnderTest, approval_of, new_task, settings_for_test
from tests.net import serve, wait_for
from tests.processes import AirlockProcess, write_config

TIMEOUT = 0.5
"""The request timeout under test: short, since every case waits it out once."""
BOUND = 10.0
"""The generous bound on any wait (the machine may be loaded)."""


@asynccontextmanager
async def limited_airlock(
    tmp_path: Path, upstream_url: str, database_url: str, **overrides: Any
) -> AsyncIterator[AirlockUnderTest]:
    """Airlock in process, served with its `[server]` limits and its log going to `caplog`."""
    settings = settings_for_test(
        tmp_path, upstream_url, database_url, server={"request_timeout_seconds": TIMEOUT}, **overrides
    )
    app = create_app(settings)
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(serve(app, log_config=None, **uvicorn_limits(settings.server)))
        yield AirlockUnderTest(
            url=url, app=app, settings=settings, policy_path=settings.upstreams[0].policy, stack=stack
        )


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (bounded).

    A server that closes while bytes it has not read are still arriving makes the kernel reset the
    connection, and the reset may overtake the answer already sent: then nothing is returned.
    """
    received = b""
    try:
        async with asyncio.timeout(BOUND):
            while chunk := await reader.read(65536):
                received += chunk
    except ConnectionResetError:
        pass
    return received


def head(method: str, path: str, host: str, *headers: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", f"Host: {host}", *headers, "", ""]).encode()


def mcp_head(
    airlock: AirlockUnderTest, token: str, length: int, accept: str = "Accept: application/json, text/event-stream"
) -> bytes:
    return head(
        "POST",
        f"/mcp/{UPSTREAM}",
        airlock.url.removeprefix("http://"),
        f"Authorization: Bearer {token}",
        "Content-Type: application/json",
        accept,
        f"Content-Length: {length}",
    )


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert record.exc_info is None and "Traceback" not in record.getMessage(), record.getMessage()
        assert record.levelno < logging.ERROR, record.getMessage()


# --------------------------------------------------------------------------- settings


def settings(tmp_path: Path, server: Any = None) -> Settings:
    document: dict[str, Any] = {
        "upstreams": [{"name": "market", "url": "http://127.0.0.1:9100/mcp", "policy": "market.json"}]
    }
    if server is not None:
        document["server"] = server
    return settings_from_document(document, base_dir=tmp_path, env={"AIRLOCK_SECRET_KEY": "k" * 40})


def test_server_limits_have_defaults_and_come_from_the_server_table(tmp_path: Path) -> None:
    assert settings(tmp_path).server == ServerSettings(
        request_timeout_seconds=30.0, max_connections=16384, keepalive_timeout_seconds=5.0
    )
    loaded = settings(
        tmp_path, {"request_timeout_seconds": 10, "max_connections": 500, "keepalive_timeout_seconds": 75}
    )
    assert loaded.server == ServerSettings(10.0, 500, 75.0)
    limits = uvicorn_limits(loaded.server)
    assert {key: limits[key] for key in ("limit_concurrency", "timeout_keep_alive")} == {
        "limit_concurrency": 501,
        "timeout_keep_alive": 75.0,
    }
    assert limits["http"].header_timeout == 10.0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"max_connections": 0}, "server.max_connections must be a positive number"),
        ({"max_connections": 1.5}, "server.max_connections must be a positive number"),
        ({"request_timeout_seconds": -1}, "server.request_timeout_seconds must be a positive number of seconds"),
        ({"keepalive_timeout_seconds": float("inf")}, "server.keepalive_timeout_seconds must be a finite number"),
        ({"read_timeout": 5}, "[server] has an unknown setting 'read_timeout'"),
    ],
)
def test_a_bad_server_limit_is_refused_in_one_sentence(tmp_path: Path, table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        settings(tmp_path, table)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_the_server_section_must_be_a_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^\[server\] must be a table$"):
        settings(tmp_path, 5)


# --------------------------------------------------------------------------- request timeout


@pytest.mark.parametrize("sender", ["stops", "trickles"])
async def test_a_half_sent_body_is_answered_408_and_closed_after_the_timeout_without_a_traceback(
    tmp_path: Path, upstream_url: str, database_url: str, caplog: pytest.LogCaptureFixture, sender: str
) -> None:
    caplog.set_level(logging.INFO)
    async with limited_airlock(tmp_path, upstream_url, database_url) as airlock:
        reader, writer = await connect(airlock.url)
        writer.write(mcp_head(airlock, await airlock.agent_token(), 1000) + b'{"jsonrpc": "2.0", ')
        await writer.drain()
        trickle = asyncio.create_task(_trickle(writer)) if sender == "trickles" else None
        answer = await read_until_closed(reader)
        if trickle is not None:
            trickle.cancel()
        writer.close()
        if sender == "stops" or answer:
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert b"connection: close" in answer.lower()
        async with httpx.AsyncClient(timeout=BOUND) as http:
            assert (await http.get(f"{airlock.url}/healthz")).status_code == 200, "the server serves on"
    assert any("did not arrive within 0.5 s" in record.getMessage() for record in caplog.records)
    no_tracebacks(caplog)


async def _trickle(writer: asyncio.StreamWriter) -> None:
    """One byte of the body every tenth of a second: always sending, never done within the timeout."""
    try:
        while not writer.is_closing():
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.1)
    except ConnectionError:
        pass  # the server cut the connection off


async def test_a_held_call_outlasts_the_request_timeout(
    tmp_path: Path,
    upstream_url: str,
    database_url: str,
    market: DemoMarket,
    mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The timeout covers receiving the request: a held call's stream runs to the hold budget (3 × the timeout)."""
    async with (
        limited_airlock(tmp_path, upstream_url, database_url, approvals={"hold_seconds": 3 * TIMEOUT}) as airlock,
        airlock.client(mode=mode) as client,
        asyncio.timeout(BOUND),
    ):
        first = await client.call_tool("em_cancel_task", {"task_id": new_task(market).id, "reason": "x"})
        listed = await client.list_tools()
    assert approval_of(first)["status"] == "pending", "answered at the hold budget, not cut off"
    assert listed.tools
    no_tracebacks(caplog)


async def test_a_body_sent_in_pieces_and_keep_alive_requests_are_unaffected(
    tmp_path: Path, upstream_url: str, database_url: str
) -> None:
    async with limited_airlock(tmp_path, upstream_url, database_url) as airlock:
        body = (
            b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", '
            b'"capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}'
        )
        reader, writer = await connect(airlock.url)
        for _ in range(3):
            writer.write(mcp_head(airlock, await airlock.agent_token(), len(body)) + body[:10])
            await writer.drain()
            writer.write(body[10:])
            await writer.drain()
            async with asyncio.timeout(BOUND):
                status = await reader.readline()
                length = await _content_length(reader)
                answer = await reader.readexactly(length)
            assert status.startswith(b"HTTP/1.1 200 ") and b'"serverInfo"' in answer, (status, answer)
        writer.close()


async def _content_length(reader: asyncio.StreamReader) -> int:
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return length


async def test_only_waiting_for_the_body_counts_not_the_apps_own_work_before_reading_it() -> None:
    async def slow_to_read(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await asyncio.sleep(TIMEOUT * 2)  # the app's own work (say, a slow token check), not the client's
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    async with serve(RequestTimeout(slow_to_read, TIMEOUT)) as url, httpx.AsyncClient(timeout=BOUND) as http:
        answer = await http.post(url, content=b"x" * 4_000_000)
    assert (answer.status_code, len(answer.content)) == (200, 4_000_000)


async def test_half_sent_headers_are_closed_after_the_timeout(
    tmp_path: Path, upstream_url: str, database_url: str
) -> None:
    async with limited_airlock(tmp_path, upstream_url, database_url) as airlock:
        reader, writer = await connect(airlock.url)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        try:
            async with asyncio.timeout(TIMEOUT * 6):
                closed = await reader.read() == b""
        except TimeoutError:
            closed = False
        writer.close()
    assert closed


# --------------------------------------------------------------------------- airlock serve: uvicorn's limits


async def test_airlock_serve_refuses_requests_over_max_connections_with_503_and_closes_idle_keep_alives(
    tmp_path: Path, upstream_url: str, database_url: str
) -> None:
    """Open connections count, idle ones too: with 2 open (the cap), a third connection's request gets 503."""
    policy = tmp_path / "policy.json"
    policy.write_text('{"version": "1", "default": "deny", "rules": []}', encoding="utf-8")
    config = write_config(
        tmp_path / "airlock.toml", database_url=database_url, upstream_url=upstream_url, policy=policy, port=8080
    )
    config.write_text(config.read_text() + "\n[server]\nmax_connections = 2\nkeepalive_timeout_seconds = 1\n")
    process = await AirlockProcess(config).start()
    try:
        host = process.url.removeprefix("http://")
        first, second = await connect(process.url), await connect(process.url)
        for reader, writer in (first, second):
            writer.write(head("GET", "/healthz", host))
            await writer.drain()
            async with asyncio.timeout(BOUND):
                assert (await reader.readline()).startswith(b"HTTP/1.1 200 ")
        reader, writer = await connect(process.url)
        writer.write(head("GET", "/healthz", host))
        await writer.drain()
        refused = await read_until_closed(reader)
        assert refused.startswith(b"HTTP/1.1 503 "), refused
        writer.close()
        for reader, writer in (first, second):
            await read_until_closed(reader)  # the idle keep-alive connection is closed after 1 s
            writer.close()

        async def served() -> bool:
            async with httpx.AsyncClient(timeout=BOUND) as http:
                return (await http.get(f"{process.url}/healthz")).status_code == 200

        await wait_for(served, timeout=BOUND, interval=0.05)
    finally:
        process.stop()
    assert "Traceback" not in process.log.read_text()
