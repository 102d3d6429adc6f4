"""Serve ASGI apps on ephemeral loopback ports inside the test's event loop.

The e2e tests drive real clients over real sockets, so servers run under uvicorn rather than
`httpx.ASGITransport` (which buffers whole responses and cannot show streaming behaviour).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import uvicorn

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for child processes that bind it themselves)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serve(app: Any, host: str = "127.0.0.1", port: int = 0, **options: Any) -> AsyncIterator[str]:
    """Run `app` under uvicorn on an ephemeral port (or `port`); yield its base URL (no trailing slash).

    `options` go to `uvicorn.Config` as they are (e.g. the limits of `app.limits.uvicorn_limits`).
    """
    # IPPROTO_TCP explicitly: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets
    # created with it, and with Nagle on every request after the first on a kept-alive
    # connection waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, **{"log_level": "warning", "lifespan": "on", "timeout_graceful_shutdown": 1, "ws": "none", **options}
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_for(lambda: server.started or task.done(), timeout=10)
        if task.done():
            task.result()  # surface the start-up failure
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=10)
        except (TimeoutError, asyncio.CancelledError):  # pragma: no cover - a stuck shutdown
            server.force_exit = True
            task.cancel()
        sock.close()


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], *, timeout: float = 10.0, interval: float = 0.01
) -> None:
    """Wait until `condition()` is true, checking every `interval` seconds; fail after `timeout`.

    This is how the suite waits on something it cannot await directly (a server flag, a row in
    another process's database): a bounded wait on a condition, never a bare sleep.
    """
    async with asyncio.timeout(timeout):
        while True:
            value = condition()
            if isinstance(value, Awaitable):
                value = await value
            if value:
                return
            await asyncio.sleep(interval)
