"""A tiny TCP load balancer for replica tests: each new connection goes to the first backend that
accepts it, so when a replica dies its clients' reconnects land on the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tests.fakes.tcp import LoopbackProxy, pipe


class Balancer(LoopbackProxy):
    def __init__(self, backends: Sequence[tuple[str, int]]) -> None:
        self.backends = list(backends)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for host, port in self.backends:
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
            except OSError:
                continue
            await asyncio.gather(pipe(reader, upstream_writer, close=True), pipe(upstream_reader, writer, close=True))
            return
        writer.close()
