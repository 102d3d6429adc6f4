"""Airlock behind a real nginx, configured exactly as docs/operations.md says.

Provenance: Airlock-defined (issue 16, item 7: a reverse-proxy recipe tested with Debian's nginx;
held calls pass through unbuffered, `Last-Event-ID` resumption works through it, and the
forwarded headers Airlock trusts are configurable). Needs `/usr/sbin/nginx` (Debian's `nginx`
package, which `.ci/run` installs): without it these tests skip, unless `CI` is set, where they fail.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.demo.upstream import DemoMarket
from tests.harness import DEFAULT_POLICY, mcp_client, new_task
from tests.net import free_port
from tests.nginx import NGINX, nginx_conf, nginx_in_front_of
from tests.processes import AirlockProcess, Cluster
from tests.rawmcp import RawSession

CLIENT_ADDRESS = "203.0.113.7"


@pytest.fixture
async def proxied(
    require_nginx: None, tmp_path: Path, database_url: str, upstream_url: str
) -> AsyncIterator[tuple[Cluster, AirlockProcess, str]]:
    """`airlock serve` trusting forwarded headers from 127.0.0.1, behind nginx; yields the nginx URL."""
    cluster = await Cluster.create(
        tmp_path,
        database_url=database_url,
        upstream_url=upstream_url,
        policy=DEFAULT_POLICY,
        approvals={"hold_seconds": 120},
    )
    with cluster.config.open("a", encoding="utf-8") as config:
        config.write('\n[server]\nforwarded_allow_ips = ["127.0.0.1"]\n')
        config.write('\n[logging]\nformat = "json"\naccess_log = true\n')
    airlock = await cluster.start()
    try:
        async with nginx_in_front_of(airlock.port, tmp_path / "nginx") as proxy:
            yield cluster, airlock, proxy
    finally:
        cluster.stop_all()


def _cancel_call(task_id: str, request_id: int = 7) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "em_cancel_task", "arguments": {"task_id": task_id, "reason": "x"}},
    }


async def test_an_allowed_call_and_a_held_call_resumed_with_last_event_id_pass_through_nginx(
    proxied: tuple[Cluster, AirlockProcess, str], market: DemoMarket
) -> None:
    cluster, airlock, proxy = proxied
    url = f"{proxy}/mcp/execution-market"
    async with mcp_client(url, cluster.agent_token) as client:
        listed = await client.call_tool("em_list_tasks", {})
    assert not listed.is_error

    task = new_task(market)
    async with httpx.AsyncClient(timeout=10) as http:
        session = RawSession(http, url, cluster.agent_token)
        await session.initialize()
        async with session.stream("POST", _cancel_call(task.id)) as held:
            # Arrives while the call is held: nginx does not buffer the stream.
            async with asyncio.timeout(10):
                priming = await held.next_event()
        assert priming.id and priming.data == ""
        approval_id = str((await cluster.wait_pending(airlock))["id"])
        async with session.stream("GET", None, **{"last-event-id": priming.id}) as resumed:
            assert resumed.response.status_code == 200
            decided = await http.post(
                f"{proxy}/api/approvals/{approval_id}/approve",
                headers={"Authorization": f"Bearer {cluster.reviewer_tokens[0]}"},
            )
            assert decided.status_code == 200
            async with asyncio.timeout(15):
                answer = await resumed.next_message()
    assert answer["id"] == 7
    assert answer["result"]["structuredContent"]["status"] == "cancelled"
    assert market.calls["em_cancel_task"] == 1


async def test_the_client_address_comes_from_x_forwarded_for_only_through_a_trusted_proxy(
    proxied: tuple[Cluster, AirlockProcess, str], tmp_path: Path
) -> None:
    cluster, airlock, proxy = proxied
    async with httpx.AsyncClient(timeout=5) as http:
        await http.get(f"{proxy}/livez", headers={"X-Forwarded-For": CLIENT_ADDRESS})
    trusting = cluster.config.read_text(encoding="utf-8")
    untrusting = tmp_path / "untrusting.toml"
    untrusting.write_text(trusting.replace('forwarded_allow_ips = ["127.0.0.1"]', ""), encoding="utf-8")
    direct = await AirlockProcess(untrusting).start()
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            await http.get(f"{direct.url}/livez", headers={"X-Forwarded-For": CLIENT_ADDRESS})
    finally:
        direct.stop()
    airlock.stop()
    [via_nginx] = _access_lines(airlock, "/livez")
    assert via_nginx["client"] == CLIENT_ADDRESS
    assert len(via_nginx["request_id"]) == 32, "nginx's $request_id, as the documented config sets it"
    [direct_line] = _access_lines(direct, "/livez")
    assert direct_line["client"] == "127.0.0.1"


def _access_lines(process: AirlockProcess, path: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in process.log.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [line for line in lines if line["logger"] == "airlock.access" and line.get("path") == path]


def test_the_documented_config_is_one_nginx_accepts(require_nginx: None, tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_conf(tmp_path, listen_port=free_port(), airlock_port=free_port()), encoding="utf-8")
    checked = subprocess.run(
        [str(NGINX), "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
