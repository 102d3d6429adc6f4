"""A loopback TCP proxy whose idle connections go stale: once `stale()` is called, every connection
opened before then is closed, unanswered, the moment a client writes to it again.

What an upstream does when its keep-alive timeout expires just as a pooled connection is reused:
the request is written into a socket the server is closing, the client gets a reset, and cannot
tell whether the server read the request. Connections opened afterwards pass everything through.
"""

from __future__ import annotations

import asyncio
import contextlib

from tests.fakes.tcp import LoopbackProxy, pipe


class StaleConnectionProxy(LoopbackProxy):
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._generation = 0

    def stale(self) -> None:
        """From now on, a connection opened before this call is dropped when it is written to again."""
        self._generation += 1

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        born = self._generation
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        back = asyncio.ensure_future(pipe(server_reader, writer))
        try:
            with contextlib.suppress(ConnectionError, OSError):
                while chunk := await reader.read(65536):
                    if self._generation != born:
                        writer.transport.abort()
                        return
                    server_writer.write(chunk)
                    await server_writer.drain()
        finally:
            back.cancel()
            for w in (writer, server_writer):
                with contextlib.suppress(Exception):
                    w.close()
