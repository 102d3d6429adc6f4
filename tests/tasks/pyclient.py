"""The Python SDK 1.x task client (`session.experimental.call_tool_as_task`, `poll_task`,
`get_task_result`), for tests.

`mcp` 1.x is the only Python client with a tasks runtime (2.x removed it), and Airlock itself
runs on 2.x, so the pinned `mcp==1.30.0` is installed into a virtual environment of its own
(`AIRLOCK_TEST_MCP1_VENV`, default `~/.cache/airlock-tests/mcp1`) on first use, under a file lock
so parallel test runs share one install. Without the package index the test is skipped with the
reason, except under `CI=true`, where that is a failure. `TaskCall` runs one call in a child
process and hands the test each step as it happens (created, each polled status, the result).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import pytest

from tests.tasks.taskclient import ClientProcess

PINNED: Final = "mcp==1.30.0"
INSTALL_TIMEOUT: Final = 300

SCRIPT: Final = """
import asyncio, json, sys
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.types import CallToolResult

def say(kind, value):
    print(json.dumps({"type": kind, kind: value.model_dump(by_alias=True, mode="json", exclude_none=True)}), flush=True)

async def main(url, token, tool, arguments):
    async with streamablehttp_client(url, headers={"Authorization": f"Bearer {token}"}) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            created = await session.experimental.call_tool_as_task(tool, arguments)
            say("created", created.task)
            async for status in session.experimental.poll_task(created.task.taskId):
                say("status", status)
            say("result", await session.experimental.get_task_result(created.task.taskId, CallToolResult))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])))
"""


def venv_dir() -> Path:
    return Path(os.environ.get("AIRLOCK_TEST_MCP1_VENV", Path.home() / ".cache" / "airlock-tests" / "mcp1"))


def require_client() -> Path:
    """The Python of an environment with the pinned `mcp` 1.x (skips, or fails under CI, when it cannot be had)."""
    root = venv_dir()
    python = root / "bin" / "python"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / ".mcp1.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / ".installed").is_file():
            _install(root, python)
    return python


def _install(root: Path, python: Path) -> None:
    steps = [[sys.executable, "-m", "venv", "--clear", str(root)], [str(python), "-m", "pip", "install", "-q", PINNED]]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            _missing(f"{' '.join(step[:4])} took longer than {INSTALL_TIMEOUT} s")
        if done.returncode != 0:
            _missing(f"{' '.join(step[:4])} failed: {done.stderr.strip()[-500:]}")
    (root / ".installed").write_text(PINNED, encoding="utf-8")


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but the Python 1.x task client cannot be installed: {reason}")
    pytest.skip(f"the Python 1.x task client cannot be installed: {reason} (set CI=true to make this a failure)")


class TaskCall(ClientProcess):
    """One `call_tool_as_task` → `poll_task` → `get_task_result` in a child process."""

    def __init__(self, python: Path, url: str, token: str, tool: str, arguments: dict[str, Any]) -> None:
        argv = [str(python), "-c", SCRIPT, url, token, tool, json.dumps(arguments)]
        super().__init__(argv, "the Python task client")

    async def until_result(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Every polled status, then the result."""
        statuses = []
        while (step := await self.next())["type"] == "status":
            statuses.append(step["status"])
        assert step["type"] == "result", step
        return statuses, step["result"]
