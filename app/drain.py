"""Graceful shutdown: on SIGTERM, stop accepting, hand held calls back, let in-flight work finish.

What uvicorn already does on SIGTERM (`uvicorn.Server.shutdown`): it stops listening, closes idle
keep-alive connections, marks busy ones to close after their response, waits up to
`timeout_graceful_shutdown` for the running requests, cancels what is left, then runs the
lifespan shutdown. `DrainingServer` keeps all of that (the grace is `[server]
shutdown_grace_seconds`) and adds what it lacks:

- **Held calls are answered at once, not cut off at the end of the grace.** A held call waits for
  a human, which no drain period covers. `Drain.begin()` tells every held request (`on_begin`),
  and its `Hold` (`app/approvals/hold.py`) hands it back: a resumable (handshake-era) stream ends without an answer,
  so its client resumes it with `Last-Event-ID` on another replica or after the restart; every
  other held request gets the "still pending" result, whose identical retry re-attaches. The
  approval itself is durable and untouched (invariant 2): deciding it later delivers its outcome.
- **Handshake-era GET streams end** (`unless_draining`), for their clients to reopen them
  elsewhere; uvicorn would otherwise wait the whole grace for them and then cut them off.
- **Approved calls already running upstream may finish** within what is left of the grace
  (`remaining()`, used by the runtime's shutdown) before they are cancelled; a cancelled one
  keeps its lease and becomes `outcome_unknown`, never re-sent (invariant 3).
- **The process exits 0** after a clean drain. uvicorn re-raises the signal it caught once it has
  stopped (so the process dies *by* SIGTERM); a service manager reads a status, and a drained
  stop is a success.

Deliberate departures (DO NOT "fix" without reading why): the listening sockets are closed
before the held calls are handed back, not after, so that a client retrying at once cannot land
on this process again; a second SIGINT still forces an immediate exit, as in uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Generator, Iterator
from typing import Any

import uvicorn

logger = logging.getLogger("airlock")

_HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Drain:
    """The process's shutdown state, shared by the server that starts it and the requests that heed it."""

    def __init__(self) -> None:
        self._deadline: float | None = None
        self._callbacks: set[Callable[[], None]] = set()

    @property
    def started(self) -> bool:
        return self._deadline is not None

    @property
    def waiting(self) -> int:
        """Held requests and streams that `begin()` would tell now."""
        return len(self._callbacks)

    def begin(self, grace_seconds: float) -> None:
        """Start draining: tell every held request and stream; in-flight work has `grace_seconds` from now."""
        if self._deadline is None:
            self._deadline = time.monotonic() + grace_seconds
        for callback in list(self._callbacks):
            callback()

    def remaining(self) -> float:
        """Seconds left of the grace (0 once it is over, or when no drain started)."""
        return 0.0 if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    @contextlib.contextmanager
    def on_begin(self, callback: Callable[[], None]) -> Iterator[None]:
        """Call `callback` when draining starts (at once, if it already has), for as long as the block runs."""
        self._callbacks.add(callback)
        if self.started:
            callback()
        try:
            yield
        finally:
            self._callbacks.discard(callback)

    def waking(self, event: asyncio.Event) -> contextlib.AbstractContextManager[None]:
        """Set `event` when draining starts (at once, if it already has), for as long as the block runs."""
        return self.on_begin(event.set)

    async def unless_draining(self, work: Coroutine[Any, Any, Any]) -> bool:
        """Run `work` until it finishes (True) or draining starts (False; `work` is cancelled).

        For streams that would otherwise never end (the handshake era's GET stream).
        """
        task = asyncio.ensure_future(work)
        drained = asyncio.Event()
        with self.waking(drained):
            waiter = asyncio.ensure_future(drained.wait())
            try:
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pending in (task, waiter):
                    pending.cancel()
                await asyncio.gather(task, waiter, return_exceptions=True)
        if task.cancelled():
            return False
        task.result()
        return True


class DrainingServer(uvicorn.Server):
    """uvicorn's server, draining Airlock's held calls first and exiting 0 (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self.drain = drain

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        grace = self.config.timeout_graceful_shutdown or 0.0
        logger.info("draining: %d held call(s) handed back, in-flight requests have %g s", self.drain.waiting, grace)
        self.drain.begin(grace)
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """uvicorn's signal capture, without re-raising the signal after a clean stop (exit status 0)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in _HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)
