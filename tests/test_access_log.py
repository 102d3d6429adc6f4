"""JSON logs and the access log, read from a real `airlock serve` process's output.

Provenance: Airlock-defined (issue 16, item 4: JSON logs with the request's correlation fields,
an access log that never logs tokens, cookies or arguments).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from app.demo.upstream import DemoMarket
from tests.harness import DEFAULT_POLICY, mcp_client, new_task
from tests.processes import AirlockProcess, Cluster

SECRET_ARGUMENT = "do-not-log-this-reason"


async def _serve_with_json_logs(tmp_path: Path, database_url: str, upstream_url: str) -> tuple[Cluster, AirlockProcess]:
    cluster = await Cluster.create(
        tmp_path,
        database_url=database_url,
        upstream_url=upstream_url,
        policy=DEFAULT_POLICY,
        approvals={"hold_seconds": 1},
    )
    with cluster.config.open("a", encoding="utf-8") as config:
        config.write('\n[logging]\nformat = "json"\naccess_log = true\n')
    return cluster, await cluster.start()


def _lines(process: AirlockProcess) -> list[dict[str, Any]]:
    text = process.log.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def test_every_line_is_json_and_each_request_gets_one_access_line_with_its_correlation_fields(
    tmp_path: Path, database_url: str, upstream_url: str, market: DemoMarket
) -> None:
    cluster, airlock = await _serve_with_json_logs(tmp_path, database_url, upstream_url)
    task = new_task(market)
    try:
        async with mcp_client(cluster.mcp(airlock), cluster.agent_token) as client:
            await client.call_tool("em_list_tasks", {})
            await client.call_tool("em_cancel_task", {"task_id": task.id, "reason": SECRET_ARGUMENT})
        [pending] = await cluster.pending(airlock)
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(
                f"{airlock.url}/healthz?key=query-secret",
                headers={"Cookie": "airlock_session=cookie-secret", "X-Request-ID": "from-the-proxy.1"},
            )
        assert response.headers["x-request-id"] == "from-the-proxy.1"
    finally:
        airlock.stop()

    lines = _lines(airlock)  # every line parses as JSON, uvicorn's own included
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    access = [line for line in lines if line["logger"] == "airlock.access"]
    [allowed] = [line for line in access if line.get("tool") == "em_list_tasks"]
    assert allowed | {"duration_ms": 0, "request_id": ""} == allowed | {
        "method": "POST",
        "path": "/mcp/execution-market",
        "status": 200,
        "agent": "agent-1",
        "upstream": "execution-market",
        "decision": "allow",
        "client": "127.0.0.1",
        "duration_ms": 0,
        "request_id": "",
    }
    [held] = [line for line in access if line.get("tool") == "em_cancel_task"]
    assert (held["decision"], held["approval_id"], held["status"]) == ("approve", pending["id"], 200)
    [parked] = [line for line in lines if line["message"].startswith("approval needed")]
    assert (parked["request_id"], parked["agent"]) == (held["request_id"], "agent-1")
    [health] = [line for line in access if line["request_id"] == "from-the-proxy.1"]
    assert (health["path"], health["status"], health["method"]) == ("/healthz", 200, "GET")
    assert len({line["request_id"] for line in access}) == len(access)

    text = airlock.log.read_text(encoding="utf-8")
    for secret in (cluster.agent_token, "query-secret", "cookie-secret", SECRET_ARGUMENT):
        assert secret not in text


async def test_the_access_log_is_off_by_default_and_text_lines_stay_text(
    tmp_path: Path, database_url: str, upstream_url: str
) -> None:
    cluster = await Cluster.create(
        tmp_path, database_url=database_url, upstream_url=upstream_url, policy=DEFAULT_POLICY, approvals={}
    )
    airlock = await cluster.start()
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(f"{airlock.url}/healthz")
        assert "x-request-id" not in response.headers
    finally:
        airlock.stop()
    text = airlock.log.read_text(encoding="utf-8")
    assert "GET /healthz" not in text
    assert "Airlock" in text and not text.lstrip().startswith("{")
