"""Time, injected: the one place the approval lifecycle reads the wall clock, measures or waits.

The lifecycle's rules are about time (an approval expires at its deadline, a request is held at
most its hold budget, a lease lapses, a withdrawal waits out its grace period). Reading time
through a `Clock` lets tests run those rules in virtual time: `FakeClock` moves only when a test
advances it, so "expires at the deadline and not before" is checked exactly, with no real waits.

`SystemClock` is what runs in production: `time.time()`, `time.monotonic()` and `asyncio`'s own
timers, with nothing added on top. `FakeClock` ships beside it (as trio ships `MockClock`) so any
component that takes a clock can be tested the same way.

What this module does not cover: timeouts about I/O rather than the lifecycle (an upstream's HTTP
timeout, a database pool's), which stay on the event loop's clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Any, Final, Protocol


class Clock(Protocol):
    """What the lifecycle asks of time."""

    def now(self) -> float:
        """Wall time, in epoch seconds (what the database stores)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for measuring how long something took."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after `seconds` of this clock's time."""
        ...

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        """Wait for `event` at most `timeout` seconds of this clock's time; True if it was set."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        # `asyncio.timeout`, not `asyncio.wait_for`: no extra task per wait (thousands of held
        # calls each wait here in a loop).
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return False
        return True


SYSTEM_CLOCK: Final = SystemClock()


class FakeClock:
    """Virtual time for tests: it stands still until `advance` moves it.

    Sleepers wake in deadline order when `advance` passes their deadline; `advance` only makes
    them runnable, so a test then waits (bounded) for what it expects them to do.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._monotonic = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._registered = asyncio.Event()

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` and wake every sleeper whose deadline is now past."""
        if seconds < 0:
            raise ValueError("a clock cannot go back")
        self._now += seconds
        self._monotonic += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    @property
    def sleepers(self) -> int:
        """How many sleeps and timed waits are pending."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def sleeping(self, count: int = 1) -> None:
        """Return once at least `count` sleeps or timed waits are pending (bound it with a timeout)."""
        while self.sleepers < count:
            self._registered.clear()
            await self._registered.wait()

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        await self._deadline(seconds)

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        if timeout <= 0:
            return False
        deadline = self._deadline(timeout)
        waiter: asyncio.Future[Any] = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait([deadline, waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            deadline.cancel()
            waiter.cancel()
        return event.is_set()

    def _deadline(self, seconds: float) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        self._registered.set()
        return future
