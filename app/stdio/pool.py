"""The children of one stdio upstream: one per upstream session, capped, restarted with backoff.

Boundary: `StdioUpstream` decides when a child starts, restarts and stops (a new session, a crash,
idleness, the cap, shutdown); `app/stdio/session.py` routes one session's messages and
`app/stdio/process.py` runs the program. No HTTP here: failures are `Refused` with the HTTP
status `app/stdio/bridge.py` answers with (why each status, in that module's docstring).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any, Final

from app.config import StdioSettings, UpstreamSettings
from app.jsonrpc import INTERNAL_ERROR
from app.stdio.process import ProcessStartError, StdioProcess
from app.stdio.session import ChildSession, Ended, Line

logger = logging.getLogger("airlock.stdio")

HEALTHY_SECONDS: Final = 30.0
"""A child that ran this long before exiting resets its upstream's crash count."""
FORGET_AFTER_SECONDS: Final = 86400.0
"""A session unused this long is forgotten (404 afterwards). A backstop: Airlock itself ends idle
sessions with DELETE much sooner (`[sessions] idle_seconds`)."""
_FIRST_BACKOFF: Final = 0.5
_MAX_BACKOFF: Final = 30.0


class Refused(Exception):
    """A request the bridge answers with an HTTP error status and a JSON-RPC error."""

    def __init__(self, status: int, message: str, code: int = INTERNAL_ERROR) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Backoff:
    """When the next child of one upstream may start, after crashes in a row."""

    def __init__(self) -> None:
        self.crashes = 0
        self._not_before = 0.0

    def crashed(self, lifetime: float) -> float:
        """Count a crash of a child that ran `lifetime` seconds; returns the delay before the next start."""
        if lifetime >= HEALTHY_SECONDS:
            self.crashes = 0
        self.crashes += 1
        delay = 0.0 if self.crashes == 1 else min(_FIRST_BACKOFF * 2 ** (self.crashes - 2), _MAX_BACKOFF)
        self._not_before = time.monotonic() + delay
        return delay

    async def wait(self) -> None:
        delay = self._not_before - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class StdioUpstream:
    """The children of one stdio upstream: one per upstream session, capped, reaped when idle."""

    def __init__(self, settings: UpstreamSettings, stdio: StdioSettings, *, max_line_bytes: int) -> None:
        self.name = settings.name
        self.settings = settings
        self.stdio = stdio
        self.sessions: dict[str, ChildSession] = {}
        self.backoff = Backoff()
        self._max_line_bytes = max_line_bytes
        self._watchers: set[asyncio.Task[None]] = set()

    def processes(self) -> list[StdioProcess]:
        """The children running now (tests and shutdown read it)."""
        return [s.process for s in self.sessions.values() if s.process is not None and s.process.running]

    async def open_session(self, line: bytes, request_id: Any) -> tuple[ChildSession, Line]:
        """Start a child for a new session and send it the agent's `initialize`.

        Raises:
            Refused: the cap is reached, the program cannot start, or it did not answer.
        """
        self._check_cap()
        session = ChildSession(secrets.token_urlsafe(24), self._tag(), self._spawn, line)
        self.sessions[session.id] = session
        try:
            await self._start(session)
            answer = await session.request(line, request_id, None, timeout=self.settings.timeout_seconds)
        except (Refused, ConnectionError) as exc:
            await self.close(session.id)
            raise exc if isinstance(exc, Refused) else Refused(502, str(exc)) from None
        if isinstance(answer, Ended):
            await self.close(session.id)
            raise Refused(502, answer.reason)
        return session, answer

    async def ensure_running(self, session: ChildSession) -> None:
        """Give a session whose child crashed or was stopped when idle a fresh one, replaying its `initialize`.

        Raises:
            Refused: the cap is reached (nothing ran), the program cannot start again, or it did
                not accept the replayed `initialize`.
        """
        async with session.restart_lock:
            if session.running:
                return
            self._check_cap()
            await self.backoff.wait()
            logger.info("%s: starting a fresh process for session %s…", self._tag(), session.id[:8])
            try:
                await self._start_with(session.restart(self.settings.timeout_seconds))
            except ConnectionError as exc:
                raise Refused(502, f"stdio upstream {self.name!r} could not be restarted: {exc}") from None

    def _check_cap(self) -> None:
        """Refuse (429: nothing ran, so an approved call is `failed`, not `outcome_unknown`) at the cap."""
        if len(self.processes()) >= self.stdio.max_processes:
            message = (
                f"stdio upstream {self.name!r} already runs its maximum of {self.stdio.max_processes} processes "
                "(one per session); close a session or raise max_processes"
            )
            logger.warning(message)
            raise Refused(429, message)

    async def close(self, session_id: str) -> bool:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        session.closing = True
        session.fail_in_flight(f"the session with stdio upstream {self.name!r} was closed")
        session.end_listeners("closed")
        if session.process is not None:
            await session.process.stop()
        return True

    async def reap_idle(self, now: float) -> None:
        """Stop the children of sessions idle for `idle_seconds`; the sessions stay, for `ensure_running`."""
        idle = [
            s
            for s in self.sessions.values()
            if s.running and not s.in_flight and now - s.last_used >= self.stdio.idle_seconds
        ]
        for session in idle:
            logger.info("%s: stopping the process of session %s (idle)", self._tag(), session.id[:8])
            assert session.process is not None
            await session.process.stop()
        forgotten = [
            s.id for s in self.sessions.values() if not s.in_flight and now - s.last_used >= FORGET_AFTER_SECONDS
        ]
        for session_id in forgotten:
            await self.close(session_id)

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.close(session_id) for session_id in list(self.sessions)))

    def _tag(self) -> str:
        return f"stdio upstream {self.name!r}"

    async def _start(self, session: ChildSession) -> None:
        await self.backoff.wait()
        await self._start_with(session.start())

    async def _start_with(self, starting: Any) -> None:
        try:
            await starting
        except ProcessStartError as exc:
            raise Refused(502, f"stdio upstream {self.name!r}: {exc}") from None

    async def _spawn(self, on_line: Any) -> StdioProcess:
        process = await StdioProcess.start(
            self.stdio.command,
            tag=self._tag(),
            env=self.stdio.env,
            cwd=self.stdio.cwd,
            on_line=on_line,
            max_line_bytes=self._max_line_bytes,
        )
        watcher = asyncio.get_running_loop().create_task(self._watch(process))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return process

    async def _watch(self, process: StdioProcess) -> None:
        started = time.monotonic()
        code = await process.exited
        session = next((s for s in self.sessions.values() if s.process is process), None)
        if session is None:
            return
        if not (session.closing or process.stopping):
            self.backoff.crashed(time.monotonic() - started)
            logger.warning(
                "%s (pid %s): exited with code %s; %d request(s) in flight failed",
                self._tag(),
                process.pid,
                code,
                len(session.in_flight),
            )
        session.fail_in_flight(
            f"the stdio server of upstream {self.name!r} exited (code {code}) before answering; "
            "the request may or may not have taken effect"
        )
