"""Airlock in front of real stdio MCP servers from the npm registry (see `tests/npmservers.py`)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from app.stdio.pool import StdioUpstream
from tests.harness import UPSTREAM, AirlockUnderTest, running_airlock, settings_for_test
from tests.npmservers import npm_server

StartStdio = Callable[..., Awaitable[AirlockUnderTest]]


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """The one directory the filesystem server may touch (resolved: the server compares real paths)."""
    path = (tmp_path / "sandbox").resolve()
    path.mkdir()
    (path / "notes.txt").write_text("hello from the sandbox\n", encoding="utf-8")
    return path


def filesystem_policy(sandbox: Path) -> dict[str, Any]:
    outside = f"(?!{re.escape(str(sandbox))}/).*|.*\\.\\..*"
    return {
        "version": "1",
        "default": "deny",
        "rules": [
            {
                "id": "outside-the-sandbox",
                "tool": ["read_text_file", "read_file", "write_file"],
                "when": {"path": {"regex": outside}},
                "action": "deny",
                "reason": "outside the sandbox",
            },
            {"id": "read", "tool": ["read_text_file", "read_file", "list_allowed_directories"], "action": "allow"},
            {"id": "write", "tool": "write_file", "action": "approve", "reason": "writes need a human"},
        ],
    }


ALLOW_ALL: dict[str, Any] = {"version": "1", "default": "allow", "rules": []}


@pytest.fixture
async def start_stdio(tmp_path: Path, database_url: str) -> AsyncIterator[StartStdio]:
    """`await start_stdio(command, policy, **upstream_options)`: Airlock with one stdio upstream."""
    async with AsyncExitStack() as stack:

        async def start(command: list[str], policy: dict[str, Any], **options: Any) -> AirlockUnderTest:
            policy_path = tmp_path / "policy.json"
            policy_path.write_text(json.dumps(policy), encoding="utf-8")
            approvals = options.pop("approvals", {})
            upstream = {"name": UPSTREAM, "command": command, "policy": str(policy_path), **options}
            settings = settings_for_test(
                tmp_path, "", database_url, policy=policy, upstreams=[upstream], approvals=approvals
            )
            return await stack.enter_async_context(running_airlock(settings))

        yield start


@pytest.fixture
async def filesystem_airlock(start_stdio: StartStdio, sandbox: Path) -> AirlockUnderTest:
    command = [str(npm_server("@modelcontextprotocol/server-filesystem")), str(sandbox)]
    return await start_stdio(command, filesystem_policy(sandbox))


@pytest.fixture
def everything_command() -> list[str]:
    return [str(npm_server("@modelcontextprotocol/server-everything")), "stdio"]


def stdio_upstream(airlock: AirlockUnderTest) -> StdioUpstream:
    return airlock.runtime.stdio.upstreams[UPSTREAM]
