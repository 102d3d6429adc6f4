"""A webhook receiver on a loopback port: records every request, answers as scripted, can be down.

`Receiver(port)` knows its URL before it listens, so Airlock can be configured with it while it is
down (connections refused); `start()` and `stop()` bring it up and down on that same port. Tests
wait on deliveries with `wait_until`, which wakes on each request (no sleeps).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.net import free_port


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    at: float
    """`time.monotonic()` when it arrived."""
    answered: int
    """The status the receiver answered with."""

    @property
    def event(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document

    @property
    def event_id(self) -> str:
        return self.headers["Airlock-Event-Id"]


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] | None = None


class Receiver:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.deliveries: list[Delivery] = []
        self._script: list[Answer] = []
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    def script(self, *answers: Answer) -> None:
        """Answer the next requests with `answers`, in order; 200 after that."""
        self._script.extend(answers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        answer = self._script.pop(0) if self._script else Answer()
        delivery = Delivery(dict(request.headers), body, time.monotonic(), answer.status)
        async with self._arrived:
            self.deliveries.append(delivery)
            self._arrived.notify_all()
        return web.Response(status=answer.status, headers=answer.headers)

    async def wait_until(self, condition: Callable[[list[Delivery]], bool], *, timeout: float = 10) -> None:
        """Wait until `condition(deliveries)` holds, re-checked on every request that arrives."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: condition(self.deliveries))

    def events(self, approval_id: str) -> list[dict[str, Any]]:
        """The distinct events the receiver accepted (2xx) for an approval, in arrival order.

        A receiver dedupes on `Airlock-Event-Id`: a second copy of an accepted event is not a new event.
        """
        seen: set[str] = set()
        found = []
        for delivery in self.deliveries:
            event = delivery.event
            accepted = 200 <= delivery.answered < 300
            if accepted and event["approval"]["id"] == approval_id and delivery.event_id not in seen:
                seen.add(delivery.event_id)
                found.append(event)
        return found
