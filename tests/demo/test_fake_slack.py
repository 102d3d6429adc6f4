"""`airlock demo --fake-slack`: the Slack approval flow end to end, without a Slack workspace.

Provenance: Airlock-defined (issue 13: try the Slack flow locally). The fake sends the requests
Slack would send, signed with the demo's signing secret; Airlock's real `/slack/interactions`
checks and decides them.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import httpx
import pytest

from app.demo.fake_slack import CLICK_PATH, main
from tests.demo.running import (
    TIMEOUT,
    RunningDemo,
    approvals_waited_for,
    child_env,
    outcome_printed,
    running_agent,
    running_demo,
    upstream_state,
)
from tests.net import wait_for

FAKE_SLACK_PAGE = re.compile(r"open (http://127\.0\.0\.1:\d+)/ ")


def fake_slack_url(demo: RunningDemo) -> str:
    return next(match[1] for line in demo.banner if (match := FAKE_SLACK_PAGE.search(line)))


async def channel_shows(slack_url: str, text: str) -> None:
    """Wait until the fake Slack's channel page contains `text`."""

    async def shown() -> bool:
        async with httpx.AsyncClient(timeout=5) as http:
            return text in (await http.get(f"{slack_url}/")).text

    await wait_for(shown, timeout=TIMEOUT, interval=0.05)


async def click_command(slack_url: str, approval_id: str, verdict: str) -> tuple[int, str]:
    """`python -m app.demo.fake_slack click ID VERDICT`: its exit status and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.demo.fake_slack",
        "click",
        approval_id,
        verdict,
        "--slack",
        slack_url,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=TIMEOUT)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_approve_from_the_click_command_runs_the_call_once_and_the_waiting_agent_prints_it(
    tmp_path: Path,
) -> None:
    async with running_demo(tmp_path, "--fake-slack", hold_seconds=0.2) as demo, running_agent(demo, tmp_path) as agent:
        slack_url = fake_slack_url(demo)
        [(approval_id, _)] = await approvals_waited_for(agent, count=1)
        await channel_shows(slack_url, f'name="approval" value="{approval_id}"')

        status, said = await click_command(slack_url, approval_id, "approve")

        assert (status, said.strip()) == (0, f"approve {approval_id}: Airlock answered 200"), said
        final = await outcome_printed(agent)
        await channel_shows(slack_url, "demo-reviewer")
        state = await upstream_state(demo)

    assert final.startswith("result:") and '"status": "cancelled"' in final
    assert [tool for tool, _ in state["log"]].count("em_cancel_task") == 1


async def test_reject_with_a_reason_from_the_channel_page_reaches_the_waiting_agent(tmp_path: Path) -> None:
    async with running_demo(tmp_path, "--fake-slack", hold_seconds=0.2) as demo, running_agent(demo, tmp_path) as agent:
        slack_url = fake_slack_url(demo)
        [(approval_id, _)] = await approvals_waited_for(agent, count=1)
        await channel_shows(slack_url, f'name="approval" value="{approval_id}"')
        form = {"from_page": "1", "approval": approval_id, "verdict": "reject", "reason": "still needed"}

        async with httpx.AsyncClient(timeout=10) as http:
            clicked = await http.post(f"{slack_url}{CLICK_PATH}", data=form)

        assert clicked.status_code == 303
        assert "Airlock%20answered%20200" in clicked.headers["location"]
        final = await outcome_printed(agent)
        state = await upstream_state(demo)

    assert final.startswith("error: A human reviewer (demo-reviewer) rejected") and "still needed" in final
    assert "em_cancel_task" not in [tool for tool, _ in state["log"]]


async def test_with_fake_slack_socket_a_reject_from_the_page_goes_over_socket_mode_and_reaches_the_agent(
    tmp_path: Path,
) -> None:
    """Issue 18, item 1: `airlock demo --fake-slack socket`; no signed HTTP, Airlock connects to the fake."""
    options = ("--fake-slack", "socket")
    async with running_demo(tmp_path, *options, hold_seconds=0.2) as demo, running_agent(demo, tmp_path) as agent:
        slack_url = fake_slack_url(demo)
        assert any("over Socket Mode" in line for line in demo.banner)
        [(approval_id, _)] = await approvals_waited_for(agent, count=1)
        await channel_shows(slack_url, f'name="approval" value="{approval_id}"')
        form = {"from_page": "1", "approval": approval_id, "verdict": "reject", "reason": "still needed"}

        async with httpx.AsyncClient(timeout=15) as http:
            clicked = await http.post(f"{slack_url}{CLICK_PATH}", data=form)

        assert "Airlock%20answered%20200" in clicked.headers["location"], clicked.headers["location"]
        final = await outcome_printed(agent)

    assert final.startswith("error: A human reviewer (demo-reviewer) rejected") and "still needed" in final


async def test_a_click_before_the_message_is_posted_says_so(tmp_path: Path) -> None:
    async with running_demo(tmp_path, "--fake-slack") as demo:
        status, said = await click_command(fake_slack_url(demo), "apr_unknown", "approve")

    assert status == 1
    assert said.strip() == "no message with buttons for apr_unknown (not posted yet, or already decided)"


def test_the_command_line_explains_serve_and_click(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["click", "--help"])

    assert exited.value.code == 0
    usage = capsys.readouterr().out
    assert "approval_id" in usage and "{approve,reject}" in usage and "--reason" in usage
