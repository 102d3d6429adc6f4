"""The TypeScript SDK's 2025-11-25 task client (`client.experimental.tasks.callToolStream`), for tests.

`@modelcontextprotocol/sdk` is pinned in `ts_client/package-lock.json` and installed there with
`npm ci` on first use, under a file lock so parallel test runs share one install. Without Node.js
or the registry the test is skipped with the reason, except under `CI=true`, where that is a
failure (as for PostgreSQL, `tests/pg.py`). `ToolStream` runs `call_tool_stream.mjs` for one
call and hands the test each message the SDK yields, as it yields it.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final, Self

import pytest

CLIENT_DIR: Final = Path(__file__).resolve().parent / "ts_client"
INSTALL_TIMEOUT: Final = 300


def require_client(client_dir: Path = CLIENT_DIR, package: str = "sdk") -> None:
    """Make sure the pinned client in `client_dir` is installed, or skip (fail under CI) saying why.

    Args:
        package: the `@modelcontextprotocol/` package whose presence says the install is done.
    """
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        _missing("node and npm are not installed")
        return
    with open(client_dir / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (client_dir / "node_modules" / "@modelcontextprotocol" / package / "package.json").is_file():
            return
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=client_dir,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
    if done.returncode != 0:
        _missing(f"npm ci failed in {client_dir}: {(done.stderr.strip().splitlines() or ['?'])[-1]}")


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but the TypeScript task client cannot run: {reason}")
    pytest.skip(
        f"the task client tests need Node.js and the TypeScript SDK: {reason} (set CI=true to make this a failure)"
    )


class ClientProcess:
    """A real task client in a child process that prints one JSON object per step, as it happens."""

    def __init__(self, argv: list[str], name: str) -> None:
        self._argv = argv
        self._name = name
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Self:
        self._process = await asyncio.create_subprocess_exec(
            *self._argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    async def next(self, timeout: float = 30) -> dict[str, Any]:
        """The next step the client printed (fails with the client's stderr if it ended instead)."""
        assert self._process is not None and self._process.stdout is not None
        async with asyncio.timeout(timeout):
            line = await self._process.stdout.readline()
        if not line:
            assert self._process.stderr is not None
            stderr = (await self._process.stderr.read()).decode(errors="replace")
            raise AssertionError(f"{self._name} ended early: {stderr[-2000:]}")
        step: dict[str, Any] = json.loads(line)
        return step


class ToolStream(ClientProcess):
    """One call by a real client script (by default `callToolStream`) in a `node` child process."""

    def __init__(
        self,
        url: str,
        token: str,
        tool: str,
        arguments: dict[str, Any],
        *,
        script: Path = CLIENT_DIR / "call_tool_stream.mjs",
        extra: tuple[str, ...] = (),
    ) -> None:
        node = shutil.which("node")
        assert node is not None
        super().__init__([node, str(script), url, token, tool, json.dumps(arguments), *extra], "the task client")

    async def until(self, kind: str, timeout: float = 30) -> dict[str, Any]:
        """Skip messages up to the first of type `kind` (`result` or `error` end the stream)."""
        while True:
            message = await self.next(timeout)
            if message["type"] == kind or message["type"] in ("result", "error"):
                return message
