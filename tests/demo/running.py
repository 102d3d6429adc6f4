"""`airlock demo` and its agent as child processes, for the tests that run them as a user would.

Every wait reads the children's output or polls a condition, bounded by `TIMEOUT`; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.harness import SECRET_KEY
from tests.net import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICY = REPO_ROOT / "policies" / "execution-market.json"
TIMEOUT = 30.0
BANNER_END = "Press Ctrl+C to stop."


@dataclass
class RunningDemo:
    config: Path
    data_dir: Path
    url: str
    upstream_url: str
    agent_token: str
    reviewer_token: str
    banner: list[str]

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.data_dir / 'airlock.db'}"


def write_demo_config(tmp_path: Path, *, port: int, upstream_port: int, hold_seconds: float = 50) -> Path:
    config = tmp_path / "airlock.toml"
    config.write_text(
        "\n".join(
            [
                'host = "127.0.0.1"',
                f"port = {port}",
                'data_dir = "data"',
                "token_cache_seconds = 0",
                "",
                "[approvals]",
                f"hold_seconds = {hold_seconds}",
                "",
                "[[upstreams]]",
                'name = "execution-market"',
                f'url = "http://127.0.0.1:{upstream_port}/mcp"',
                f"policy = {json.dumps(str(POLICY))}",
                "",
            ]
        ),
        encoding="utf-8",
    )
    return config


def child_env() -> dict[str, str]:
    """The test's environment without anything that would override the config the test wrote."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRLOCK_", "SLACK_")) and key != "DATABASE_URL"
    }
    return {**env, "AIRLOCK_SECRET_KEY": SECRET_KEY, "PYTHONUNBUFFERED": "1"}


async def read_until(
    stream: asyncio.StreamReader, done: Callable[[str], bool], *, timeout: float = TIMEOUT
) -> list[str]:
    """The lines of `stream` up to and including the first for which `done(line)` holds."""
    lines: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError("the process ended before the expected line:\n" + "".join(lines))
            lines.append(raw.decode())
            if done(lines[-1]):
                return lines


def banner_value(lines: list[str], label: str) -> str:
    line = next(line for line in lines if line.strip().startswith(label))
    return line.split(":", 1)[1].strip()


@asynccontextmanager
async def running_demo(tmp_path: Path, *options: str, hold_seconds: float = 50) -> AsyncIterator[RunningDemo]:
    """`python -m app demo [OPTIONS]` in a child process, from the moment its banner is printed."""
    port, upstream_port = free_port(), free_port()
    config = write_demo_config(tmp_path, port=port, upstream_port=upstream_port, hold_seconds=hold_seconds)
    with open(tmp_path / "demo.log", "wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app",
            "demo",
            "--config",
            str(config),
            *options,
            cwd=tmp_path,
            env=child_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
    try:
        assert process.stdout is not None
        try:
            lines = await read_until(process.stdout, lambda line: line.strip() == BANNER_END)
        except AssertionError:
            raise AssertionError((tmp_path / "demo.log").read_text()) from None
        yield RunningDemo(
            config=config,
            data_dir=tmp_path / "data",
            url=f"http://127.0.0.1:{port}",
            upstream_url=f"http://127.0.0.1:{upstream_port}/mcp",
            agent_token=banner_value(lines, "agent token"),
            reviewer_token=banner_value(lines, "reviewer token"),
            banner=lines,
        )
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), timeout=TIMEOUT)


async def run_cli(*args: str, cwd: Path) -> tuple[int, str]:
    """Run `python -m app ARGS` to completion; its exit status and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        *args,
        cwd=cwd,
        env=child_env(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=TIMEOUT)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


WAITING = re.compile(r"waiting for a human to decide: em_cancel_task \(approval (apr_\S+)\); review it at (\S+)")


async def approvals_waited_for(stdout: asyncio.StreamReader, count: int) -> list[tuple[str, str]]:
    """(approval id, review URL) of the agent's first `count` "waiting" lines."""
    found: list[tuple[str, str]] = []

    def waiting(line: str) -> bool:
        if match := WAITING.fullmatch(line.strip()):
            found.append((match[1], match[2]))
        return len(found) == count

    await read_until(stdout, waiting)
    return found


@asynccontextmanager
async def running_agent(demo: RunningDemo, cwd: Path) -> AsyncIterator[asyncio.StreamReader]:
    """The saved demo agent (`data/demo_agent.py`) running against `demo`; yields its output."""
    agent = await asyncio.create_subprocess_exec(
        sys.executable,
        str(demo.data_dir / "demo_agent.py"),
        cwd=cwd,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert agent.stdout is not None
    try:
        yield agent.stdout
        assert await asyncio.wait_for(agent.wait(), timeout=TIMEOUT) == 0
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()


async def outcome_printed(stdout: asyncio.StreamReader) -> str:
    """What the agent printed from its "result:" or "error:" line to its end."""
    lines = await read_until(stdout, lambda line: line.startswith(("result:", "error:")))
    return lines[-1] + (await asyncio.wait_for(stdout.read(), timeout=TIMEOUT)).decode()


async def upstream_state(demo: RunningDemo) -> dict[str, Any]:
    """What the demo upstream ran (`GET /_demo/state`)."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(demo.upstream_url.removesuffix("/mcp") + "/_demo/state")
    state: dict[str, Any] = response.json()
    return state
