"""`airlock demo` as the user runs it: a child process, a second run against it, and the demo agent.

Provenance: Airlock-defined (issue 13, item 1: a demo that is safe to start twice and whose agent
waits for the human however long they take).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from app.cli import main
from app.demo.run import AGENT_PLACEHOLDERS, agent_script
from app.store import tokens as token_store
from app.store.db import Database
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

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.data_dir / 'airlock.db'}"


def write_demo_config(tmp_path: Path, *, port: int, upstream_port: int, hold_seconds: float = 50) -> Path:
    config = tmp_path / "airlock.toml"
    config.write_text("\n".join([
        'host = "127.0.0.1"', f"port = {port}", 'data_dir = "data"', "token_cache_seconds = 0", "",
        "[approvals]", f"hold_seconds = {hold_seconds}", "", "[[upstreams]]", 'name = "execution-market"',
        f'url = "http://127.0.0.1:{upstream_port}/mcp"', f"policy = {json.dumps(str(POLICY))}", "",
    ]), encoding="utf-8")
    return config


def child_env() -> dict[str, str]:
    """The test's environment without anything that would override the config the test wrote."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AIRLOCK_", "SLACK_")) and key != "DATABASE_URL"}
    return {**env, "AIRLOCK_SECRET_KEY": SECRET_KEY, "PYTHONUNBUFFERED": "1"}


async def read_until(stream: asyncio.StreamReader, done: Callable[[str], bool], *,
                     timeout: float = TIMEOUT) -> list[str]:
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
async def running_demo(tmp_path: Path, *, hold_seconds: float = 50) -> AsyncIterator[RunningDemo]:
    """`python -m app demo` in a child process, until its banner is printed."""
    port, upstream_port = free_port(), free_port()
    config = write_demo_config(tmp_path, port=port, upstream_port=upstream_port, hold_seconds=hold_seconds)
    with open(tmp_path / "demo.log", "wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app", "demo", "--config", str(config), cwd=tmp_path, env=child_env(),
            stdout=asyncio.subprocess.PIPE, stderr=log)
    try:
        assert process.stdout is not None
        try:
            lines = await read_until(process.stdout, lambda line: line.strip() == BANNER_END)
        except AssertionError:
            raise AssertionError((tmp_path / "demo.log").read_text()) from None
        yield RunningDemo(config=config, data_dir=tmp_path / "data", url=f"http://127.0.0.1:{port}",
                          upstream_url=f"http://127.0.0.1:{upstream_port}/mcp",
                          agent_token=banner_value(lines, "agent token"),
                          reviewer_token=banner_value(lines, "reviewer token"))
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), timeout=TIMEOUT)


async def run_cli(*args: str, cwd: Path) -> tuple[int, str]:
    """Run `python -m app ARGS` to completion; its exit status and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", *args, cwd=cwd, env=child_env(),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=TIMEOUT)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def agent_tokens(demo: RunningDemo) -> list[token_store.AgentTokenRow]:
    db = Database(demo.database_url)
    try:
        async with db.read() as conn:
            return await token_store.list_agent_tokens(conn, include_revoked=True)
    finally:
        await db.dispose()


async def reviewer_token_works(demo: RunningDemo) -> bool:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"{demo.url}/api/approvals",
                                  headers={"Authorization": f"Bearer {demo.reviewer_token}"})
    return response.status_code == 200


def listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("other_ports", [False, True], ids=["same-ports", "other-ports"])
async def test_a_second_demo_changes_nothing_and_says_where_the_first_runs(tmp_path: Path, other_ports: bool) -> None:
    async with running_demo(tmp_path) as demo:
        script = (demo.data_dir / "demo_agent.py").read_bytes()
        tokens_before = await agent_tokens(demo)
        ports = ["--port", str(free_port()), "--upstream-port", str(free_port())] if other_ports else []

        status, stderr = await run_cli("demo", "--config", str(demo.config), *ports, cwd=tmp_path)

        assert status == 2
        assert stderr.count("\n") == 1 and stderr.startswith("airlock: a demo is already running")
        assert demo.url in stderr and f"{demo.url}/inbox" in stderr and demo.upstream_url in stderr
        assert (demo.data_dir / "demo_agent.py").read_bytes() == script
        assert await agent_tokens(demo) == tokens_before and len(tokens_before) == 1
        assert await reviewer_token_works(demo)


@pytest.mark.parametrize("taken", ["airlock", "upstream"])
async def test_a_taken_port_is_named_with_the_option_that_moves_it_and_nothing_is_issued(
        tmp_path: Path, taken: str) -> None:
    with listening_socket() as busy:
        busy_port = busy.getsockname()[1]
        port, upstream_port = (busy_port, free_port()) if taken == "airlock" else (free_port(), busy_port)
        config = write_demo_config(tmp_path, port=port, upstream_port=upstream_port)

        status, stderr = await run_cli("demo", "--config", str(config), cwd=tmp_path)

    assert status == 2
    assert stderr.count("\n") == 1 and f"port {busy_port} on 127.0.0.1" in stderr
    assert ("--port N" if taken == "airlock" else "--upstream-port N") in stderr
    assert not (tmp_path / "data" / "demo_agent.py").exists()
    assert not (tmp_path / "data" / "airlock.db").exists()


def test_both_ports_are_options_of_the_demo_command() -> None:
    result = CliRunner().invoke(main, ["demo", "--help"])

    assert result.exit_code == 0
    assert "--port" in result.output and "--upstream-port" in result.output


def test_the_saved_agent_is_the_demo_agent_with_this_demos_endpoint_and_token() -> None:
    source = agent_script("http://127.0.0.1:1234/mcp/execution-market", "alk_agent_secret")

    assert 'URL = "http://127.0.0.1:1234/mcp/execution-market"' in source
    assert 'TOKEN = "alk_agent_secret"' in source
    assert not any(placeholder in source for placeholder in AGENT_PLACEHOLDERS)
    compile(source, "demo_agent.py", "exec")


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


@pytest.mark.parametrize(("verdict", "outcome"), [("approve", "result:"), ("reject", "error:")])
async def test_the_demo_agent_keeps_calling_through_pending_results_and_prints_the_outcome(
        tmp_path: Path, verdict: str, outcome: str) -> None:
    async with running_demo(tmp_path, hold_seconds=0.2) as demo:
        agent = await asyncio.create_subprocess_exec(
            sys.executable, str(demo.data_dir / "demo_agent.py"), cwd=tmp_path, env=child_env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert agent.stdout is not None
        try:
            waited = await approvals_waited_for(agent.stdout, count=3)
            approval_id = waited[0][0]
            async with httpx.AsyncClient(timeout=10) as http:
                decided = await http.post(f"{demo.url}/api/approvals/{approval_id}/{verdict}",
                                          json={"reason": "still needed"},
                                          headers={"Authorization": f"Bearer {demo.reviewer_token}"})
                assert decided.status_code == 200, decided.text
                lines = await read_until(agent.stdout, lambda line: line.startswith(("result:", "error:")))
                final = lines[-1] + (await asyncio.wait_for(agent.stdout.read(), timeout=TIMEOUT)).decode()
                state = (await http.get(demo.upstream_url.removesuffix("/mcp") + "/_demo/state")).json()
            assert await asyncio.wait_for(agent.wait(), timeout=TIMEOUT) == 0
        finally:
            if agent.returncode is None:
                agent.kill()
                await agent.wait()

    assert waited == [(approval_id, f"{demo.url}/inbox/{approval_id}")] * 3
    assert final.startswith(outcome)
    cancels = [arguments for tool, arguments in state["log"] if tool == "em_cancel_task"]
    if verdict == "approve":
        assert '"status": "cancelled"' in final
        assert len(cancels) == 1
    else:
        assert "rejected" in final and "still needed" in final
        assert cancels == []
