"""A loopback TCP proxy that loses an answer on the way: once armed, it cuts the connection right
after the first byte of the first server-to-client data that contains `marker`.

What a buffering proxy or a flaky network does to a held request: the server wrote the outcome
(and so counts it as delivered), the client never reads it whole. Connections opened before or
after the cut pass everything through.
"""

from __future__ import annotations

import asyncio
import contextlib

from tests.fakes.tcp import LoopbackProxy, pipe


class CuttingProxy(LoopbackProxy):
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.marker: bytes | None = None
        self.cut = asyncio.Event()
        """Set when a connection was cut."""

    def arm(self, marker: bytes) -> None:
        """Cut the next server-to-client stream that carries `marker` (once)."""
        self.marker = marker

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        to_server = asyncio.ensure_future(pipe(reader, upstream_writer))
        try:
            await self._pipe_back(upstream_reader, writer)
        finally:
            to_server.cancel()
            for w in (writer, upstream_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _pipe_back(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tail = b""
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await reader.read(65536):
                marker = self.marker
                if marker is not None:
                    seen = tail + chunk  # `tail` was passed on already; it may hold the marker's start
                    index = seen.find(marker)
                    if index >= 0:
                        self.marker = None
                        # Everything before the marker, and its first byte; then the connection is gone.
                        writer.write(seen[len(tail) : max(len(tail), index + 1)])
                        await writer.drain()
                        writer.transport.abort()
                        self.cut.set()
                        return
                    tail = seen[-len(marker) :]
                writer.write(chunk)
                await writer.drain()
