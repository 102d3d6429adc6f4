"""A tiny TCP load balancer for replica tests: each new connection goes to the first backend that
accepts it, so when a replica dies its clients' reconnects land on the next one.

It also watches what each backend sends its clients (`sent`), so a test can crash a replica at a
known point, e.g. only after the held request's SSE stream has begun, rather than at a moment
a loaded machine chooses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Final

from tests.fakes.tcp import LoopbackProxy, pipe

_WATCHED_BYTES: Final = 1 << 20
"""What `sent` can see of each backend's replies (the first MiB): enough for the headers and first events."""

PRIMING_EVENT: Final = b"\r\nretry: "
"""What only a held stream's first (priming) event carries (`app/gateway/holding.py`): once a
client has it, it can resume the stream elsewhere."""


class Balancer(LoopbackProxy):
    def __init__(self, backends: Sequence[tuple[str, int]]) -> None:
        self.backends = list(backends)
        self._replies: dict[int, bytearray] = {port: bytearray() for _, port in self.backends}
        self._replied = asyncio.Condition()

    async def sent(self, port: int, marker: bytes) -> None:
        """Return once the backend on `port` has sent a client bytes that contain `marker`."""
        async with self._replied:
            await self._replied.wait_for(lambda: marker in self._replies[port])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for host, port in self.backends:
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
            except OSError:
                continue
            await asyncio.gather(pipe(reader, upstream_writer, close=True), self._reply(port, upstream_reader, writer))
            return
        writer.close()

    async def _reply(self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one backend's reply to its client, as `pipe` does, noting what went by for `sent`."""
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
                async with self._replied:
                    seen = self._replies[port]
                    seen += chunk[: max(0, _WATCHED_BYTES - len(seen))]
                    self._replied.notify_all()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
