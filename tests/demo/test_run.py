"""`airlock demo` as the user runs it: a child process, a second run against it, and the demo agent.

Provenance: Airlock-defined (issue 13, item 1: a demo that is safe to start twice and whose agent
waits for the human however long they take).
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from app.cli import main
from app.demo.run import AGENT_PLACEHOLDERS, agent_script
from app.store import tokens as token_store
from app.store.db import Database
from tests.demo.running import (
    RunningDemo,
    approvals_waited_for,
    outcome_printed,
    run_cli,
    running_agent,
    running_demo,
    upstream_state,
    write_demo_config,
)
from tests.net import free_port


async def agent_tokens(demo: RunningDemo) -> list[token_store.AgentTokenRow]:
    db = Database(demo.database_url)
    try:
        async with db.read() as conn:
            return await token_store.list_agent_tokens(conn, include_revoked=True)
    finally:
        await db.dispose()


async def reviewer_token_works(demo: RunningDemo) -> bool:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(
            f"{demo.url}/api/approvals", headers={"Authorization": f"Bearer {demo.reviewer_token}"}
        )
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
    tmp_path: Path, taken: str
) -> None:
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


def test_the_demo_command_offers_both_ports_and_the_fake_slack() -> None:
    result = CliRunner().invoke(main, ["demo", "--help"])

    assert result.exit_code == 0
    assert "--port" in result.output and "--upstream-port" in result.output and "--fake-slack" in result.output


def test_the_saved_agent_is_the_demo_agent_with_this_demos_endpoint_and_token() -> None:
    source = agent_script("http://127.0.0.1:1234/mcp/execution-market", "alk_agent_secret")

    assert 'URL = "http://127.0.0.1:1234/mcp/execution-market"' in source
    assert 'TOKEN = "alk_agent_secret"' in source
    assert not any(placeholder in source for placeholder in AGENT_PLACEHOLDERS)
    compile(source, "demo_agent.py", "exec")


@pytest.mark.parametrize(("verdict", "outcome"), [("approve", "result:"), ("reject", "error:")])
async def test_the_demo_agent_keeps_calling_through_pending_results_and_prints_the_outcome(
    tmp_path: Path, verdict: str, outcome: str
) -> None:
    async with running_demo(tmp_path, hold_seconds=0.2) as demo, running_agent(demo, tmp_path) as agent:
        waited = await approvals_waited_for(agent, count=3)
        approval_id = waited[0][0]
        async with httpx.AsyncClient(timeout=10) as http:
            decided = await http.post(
                f"{demo.url}/api/approvals/{approval_id}/{verdict}",
                json={"reason": "still needed"},
                headers={"Authorization": f"Bearer {demo.reviewer_token}"},
            )
        assert decided.status_code == 200, decided.text
        final = await outcome_printed(agent)
        state = await upstream_state(demo)

    assert waited == [(approval_id, f"{demo.url}/inbox/{approval_id}")] * 3
    assert final.startswith(outcome)
    cancels = [arguments for tool, arguments in state["log"] if tool == "em_cancel_task"]
    if verdict == "approve":
        assert '"status": "cancelled"' in final
        assert len(cancels) == 1
    else:
        assert "rejected" in final and "still needed" in final
        assert cancels == []
