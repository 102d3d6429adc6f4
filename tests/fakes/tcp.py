"""What the loopback TCP proxies of the tests share: a server on an ephemeral port, and a byte pipe."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Self


class LoopbackProxy:
    """A TCP server on 127.0.0.1 that hands each connection to `_handle`; `url` is set while running."""

    url = ""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Self]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), timeout=2)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, close: bool = False) -> None:
    """Copy bytes until the reader ends or either side fails; then close the writer if asked."""
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        if close:
            with contextlib.suppress(Exception):
                writer.close()
