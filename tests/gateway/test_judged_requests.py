"""`resources/read`, `prompts/get` and friends pass the upstream's policy and are audited (issue 14, item 4).

Provenance: Airlock-defined. The upstream is a server built on the official SDK (`MCPServer`, the
notes server of `test_endpoints.py`), the agent the official `mcp` Client in both eras, on the
upstream's own path and through an endpoint (where the policy sees the upstream's own URI).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import TextResourceContents

from app.store import audit as audit_store
from app.store.audit import AuditRow
from tests.gateway.test_endpoints import build_notes
from tests.harness import AirlockUnderTest, mcp_client, running_airlock, settings_for_test
from tests.net import serve

POLICY: dict[str, Any] = {
    "version": "1",
    "default": "allow",
    "requests": [
        {
            "id": "no-secrets",
            "method": "resources/read",
            "match": "note://secret*",
            "action": "deny",
            "reason": "secret",
        },
        {"method": "prompts/get", "match": "summarise", "agents": ["intern-*"], "action": "deny"},
        {"method": ["resources/subscribe", "logging/setLevel"], "action": "deny"},
    ],
}

INITIALIZE = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}


@pytest.fixture
async def airlock(tmp_path: Path, database_url: str) -> AsyncIterator[AirlockUnderTest]:
    async with serve(build_notes(Counter())) as notes:
        policy = tmp_path / "notes.json"
        policy.write_text(json.dumps(POLICY), encoding="utf-8")
        settings = settings_for_test(
            tmp_path,
            f"{notes}/mcp",
            database_url,
            upstreams=[{"name": "notes", "url": f"{notes}/mcp", "policy": str(policy)}],
            endpoints=[{"name": "team", "upstreams": ["notes"]}],
        )
        async with running_airlock(settings) as running:
            yield running


async def audited(airlock: AirlockUnderTest) -> list[AuditRow]:
    await airlock.runtime.audit.flush()
    async with airlock.runtime.db.read() as conn:
        return await audit_store.search(conn, newest_first=False, limit=100)


@pytest.mark.parametrize("path", ["notes", "team"])
async def test_a_read_no_rule_denies_is_forwarded_and_audited(airlock: AirlockUnderTest, mode: str, path: str) -> None:
    uri = "note://shopping" if path == "notes" else "airlock:notes/note://shopping"
    async with mcp_client(f"{airlock.url}/mcp/{path}", await airlock.agent_token(), mode=mode) as client:
        read = await client.read_resource(uri)
    assert isinstance(read.contents[0], TextResourceContents) and read.contents[0].text == "eggs, flour"
    [entry] = [row for row in await audited(airlock) if row.detail == "resources/read"]
    assert (entry.upstream, entry.tool, entry.decision, entry.rule, entry.outcome) == (
        "notes",
        "note://shopping",
        "allow",
        "requests.default",
        "ok",
    )


@pytest.mark.parametrize("path", ["notes", "team"])
async def test_a_denied_read_never_reaches_the_upstream_and_says_why(
    airlock: AirlockUnderTest, mode: str, path: str
) -> None:
    uri = "note://secret-plans" if path == "notes" else "airlock:notes/note://secret-plans"
    async with mcp_client(f"{airlock.url}/mcp/{path}", await airlock.agent_token(), mode=mode) as client:
        with pytest.raises(MCPError, match="Airlock policy denied resources/read of note://secret-plans: secret"):
            await client.read_resource(uri)
    [entry] = [row for row in await audited(airlock) if row.detail == "resources/read"]
    assert (entry.decision, entry.rule, entry.outcome) == ("deny", "no-secrets", "refused")


async def test_a_prompt_rule_applies_to_the_agents_it_names(airlock: AirlockUnderTest, mode: str) -> None:
    url = f"{airlock.url}/mcp/notes"
    async with mcp_client(url, await airlock.agent_token("intern-bot"), mode=mode) as intern:
        with pytest.raises(MCPError, match="Airlock policy denied prompts/get of summarise"):
            await intern.get_prompt("summarise", {"topic": "x"})
    async with mcp_client(url, await airlock.agent_token("senior-bot"), mode=mode) as senior:
        prompt = await senior.get_prompt("summarise", {"topic": "x"})
    assert prompt.messages
    decisions = [(row.agent, row.decision) for row in await audited(airlock) if row.detail == "prompts/get"]
    assert decisions == [("intern-bot", "deny"), ("senior-bot", "allow")]


async def test_a_method_can_be_denied_by_name(airlock: AirlockUnderTest) -> None:
    """`resources/subscribe` (the SDK client warns it is gone in 2026-07-28, so this speaks the handshake era raw)."""
    headers = {
        "Authorization": f"Bearer {await airlock.agent_token()}",
        "Accept": "application/json, text/event-stream",
    }
    url = f"{airlock.url}/mcp/notes"
    async with httpx.AsyncClient(headers=headers, timeout=10) as http:
        opened = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE})
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        subscribe = {"jsonrpc": "2.0", "id": 2, "method": "resources/subscribe", "params": {"uri": "note://shopping"}}
        answer = await http.post(url, headers=session, json=subscribe)
    assert answer.status_code == 200
    assert answer.json()["error"]["message"].startswith("Airlock policy denied resources/subscribe of note://shopping")
