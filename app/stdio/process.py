"""One MCP server run as a child process, speaking newline-delimited JSON-RPC on stdin/stdout.

The boundary: this module starts a program, writes messages to its stdin, hands each line of its
stdout to a callback, forwards its stderr to Airlock's log, and stops it. It knows nothing of MCP
sessions, HTTP or which agent a message belongs to (that is `app/stdio/bridge.py`).

Deliberate choices:
- The child inherits only the few variables the official SDK's stdio client passes on
  (`mcp.client.stdio.get_default_environment`: HOME, PATH, USER, …) plus the configured `env`;
  Airlock's own secrets (database URL, Slack tokens, the cookie key) never reach it.
- Each child is the leader of its own process group, and stopping it signals the group
  (SIGTERM, then SIGKILL after a grace): launchers such as `npx` fork the real server, and
  signalling only the launcher would leave the server orphaned.
- stderr is forwarded a line at a time, each cut to `STDERR_LINE_LIMIT` characters and tagged
  with the upstream's name, at most `STDERR_LINES_PER_WINDOW` lines per `STDERR_WINDOW_SECONDS`
  (then one line says how many were skipped), so a chatty server cannot flood Airlock's log; the
  pipe is always read, so the child never blocks on a full stderr. A stdout line longer than `max_line_bytes` ends the child (the stream
  cannot be resynchronised).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Final

from mcp.client.stdio import get_default_environment

logger = logging.getLogger("airlock.stdio")

STDERR_LINE_LIMIT: Final = 2000
"""Characters of one stderr line that reach the log (the rest is marked as cut)."""
STDERR_LINES_PER_WINDOW: Final = 200
STDERR_WINDOW_SECONDS: Final = 10.0
"""At most this many stderr lines of one child reach the log per window; the rest are counted."""
STOP_GRACE_SECONDS: Final = 5.0
"""How long a child has to exit after SIGTERM before it gets SIGKILL."""

LineHandler = Callable[[bytes], Awaitable[None]]


class ProcessStartError(Exception):
    """The program could not be started (not found, not executable, bad cwd)."""


class StdioProcess:
    """A running child: `send()` lines to it, `exited` resolves with its exit code."""

    def __init__(self, process: asyncio.subprocess.Process, tag: str, on_line: LineHandler) -> None:
        self._process = process
        self.tag = tag
        self.pid = process.pid
        self._on_line = on_line
        self._write_lock = asyncio.Lock()
        self.stopping = False
        """True once `stop()` was called: its exit is not a crash."""
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._tasks = [
            asyncio.create_task(self._read_stdout(), name=f"stdio-out-{tag}"),
            asyncio.create_task(self._read_stderr(), name=f"stdio-err-{tag}"),
        ]
        self._waiter = asyncio.create_task(self._wait(), name=f"stdio-wait-{tag}")

    @classmethod
    async def start(
        cls,
        command: tuple[str, ...],
        *,
        tag: str,
        env: Mapping[str, str],
        cwd: Path | None,
        on_line: LineHandler,
        max_line_bytes: int,
    ) -> StdioProcess:
        """Start `command`.

        Raises:
            ProcessStartError: the program could not be started.
        """
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**get_default_environment(), **env},
                cwd=cwd,
                start_new_session=True,
                limit=max_line_bytes,
            )
        except OSError as exc:
            raise ProcessStartError(f"cannot start {command[0]!r}: {exc.strerror or exc}") from None
        return cls(process, tag, on_line)

    @property
    def running(self) -> bool:
        return not self.exited.done()

    async def send(self, line: bytes) -> None:
        """Write one message (a JSON text without newlines) to the child's stdin.

        Raises:
            ConnectionError: the child's stdin is closed (it exited).
        """
        stdin = self._process.stdin
        if stdin is None or stdin.is_closing() or not self.running:
            raise ConnectionError(f"{self.tag}: the process has exited")
        async with self._write_lock:
            stdin.write(line + b"\n")
            await stdin.drain()

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> int:
        """Stop the child's process group: SIGTERM, then SIGKILL after `grace` seconds. Returns its exit code."""
        self.stopping = True
        if self.running:
            if self._process.stdin is not None:
                self._process.stdin.close()
            self._signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(grace):
                    await asyncio.shield(self.exited)
            except TimeoutError:
                logger.warning("%s: did not exit %.0f s after SIGTERM; killing it", self.tag, grace)
                self._signal(signal.SIGKILL)
        code = await asyncio.shield(self.exited)
        # Whatever the server left behind in its group (it forked helpers) goes with it.
        self._signal(signal.SIGKILL)
        return code

    def kill(self) -> None:
        """SIGKILL the child's process group now (tests use it to simulate a crash)."""
        self._signal(signal.SIGKILL)

    def _signal(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    async def _wait(self) -> None:
        code = await self._process.wait()
        # Deliver every line already written before announcing the exit.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.exited.set_result(code)

    async def _read_stdout(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        while True:
            try:
                line = await stdout.readline()
            except ValueError:  # a line longer than the limit: the stream cannot be resynchronised
                logger.error("%s: wrote a message longer than the line limit; stopping it", self.tag)
                self._signal(signal.SIGKILL)
                return
            if not line:
                return
            line = line.strip()
            if line:
                try:
                    await self._on_line(line)
                except Exception:
                    logger.exception("%s: handling a line from the process failed", self.tag)

    async def _read_stderr(self) -> None:
        stderr = self._process.stderr
        assert stderr is not None
        budget = LineBudget(STDERR_LINES_PER_WINDOW, STDERR_WINDOW_SECONDS)
        while True:
            try:
                line = await stderr.readline()
            except ValueError:
                line = b"(a stderr line longer than the line limit was skipped)"
            if not line:
                break
            text = line.decode("utf-8", "replace").rstrip()
            if len(text) > STDERR_LINE_LIMIT:
                text = text[:STDERR_LINE_LIMIT] + f" … ({len(text) - STDERR_LINE_LIMIT} more characters cut)"
            if text:
                self._log_stderr(budget, text)
        if budget.skipped:
            logger.info("%s stderr: … %d more lines not logged", self.tag, budget.skipped)

    def _log_stderr(self, budget: LineBudget, text: str) -> None:
        skipped = budget.skipped
        if budget.take(time.monotonic()):
            if skipped:
                logger.info(
                    "%s stderr: … %d lines not logged (more than %d in %g s)",
                    self.tag,
                    skipped,
                    budget.limit,
                    budget.window,
                )
            logger.info("%s stderr: %s", self.tag, text)


class LineBudget:
    """At most `limit` lines per `window` seconds; `skipped` counts the lines refused since the last one taken.

    Pure (the caller passes the time), so it is tested as a table.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.skipped = 0
        self._start = -window
        self._used = 0

    def take(self, now: float) -> bool:
        if now - self._start >= self.window:
            self._start, self._used = now, 0
        if self._used >= self.limit:
            self.skipped += 1
            return False
        self._used += 1
        self.skipped = 0
        return True
