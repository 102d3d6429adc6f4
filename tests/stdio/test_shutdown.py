"""Airlock stops its stdio children on shutdown, and a child that ignores SIGTERM gets SIGKILL.

Provenance: Airlock-defined (issue 14, item 1: "Airlock stops its children on shutdown").
The children run under a shell that forks the real server (as `npx` does), so a stop that
signalled only the direct child would leave the server orphaned; the test looks for any live
process left in each child's process group.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from app.stdio.process import StdioProcess
from tests.harness import UPSTREAM, running_airlock, settings_for_test
from tests.stdio.conftest import ALLOW_ALL, stdio_upstream


def live_members(group: int) -> list[int]:
    """The processes of process group `group` that are still alive (zombies are dead)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == group and state != "Z":
            alive.append(int(stat.parent.name))
    return alive


async def test_shutdown_stops_every_child_and_leaves_no_process_of_theirs_behind(
    tmp_path: Path, database_url: str, everything_command: list[str]
) -> None:
    policy_path = tmp_path / "policy.json"
    policy_path.write_text(json.dumps(ALLOW_ALL), encoding="utf-8")
    forking = ["/bin/sh", "-c", '"$0" "$@"; exit $?', *everything_command]
    upstream = {"name": UPSTREAM, "command": forking, "policy": str(policy_path)}
    settings = settings_for_test(tmp_path, "", database_url, policy=ALLOW_ALL, upstreams=[upstream])
    async with running_airlock(settings) as airlock:
        async with airlock.client("agent-a") as a, airlock.client("agent-b") as b:
            assert not (await a.call_tool("get-sum", {"a": 1, "b": 2})).is_error
            assert not (await b.call_tool("get-sum", {"a": 1, "b": 2})).is_error
            groups = [process.pid for process in stdio_upstream(airlock).processes()]
            assert len(groups) == 2
            assert all(len(live_members(group)) >= 2 for group in groups), "the shell should have forked the server"
    assert [live_members(group) for group in groups] == [[], []]


async def test_a_child_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    ignoring = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    ready = asyncio.Event()

    async def on_line(line: bytes) -> None:
        ready.set()

    process = await StdioProcess.start(
        (sys.executable, "-c", ignoring), tag="test", env={}, cwd=None, on_line=on_line, max_line_bytes=1024
    )
    async with asyncio.timeout(10):
        await ready.wait()  # SIGTERM is ignored from here on
    code = await process.stop(grace=0.5)
    assert code == -9
    assert live_members(process.pid) == []
