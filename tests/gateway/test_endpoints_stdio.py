"""One endpoint in front of an HTTP upstream and a stdio upstream: the README's "done means" for issue 14.

Provenance: Airlock-defined (issue 14, items 1 and 2). The stdio upstream is
`@modelcontextprotocol/server-filesystem` from the npm registry at its pinned version
(`tests/npmservers.py`), which speaks the handshake era only: a `mode="auto"` client is told so by
the endpoint's `server/discover` and falls back to `initialize`, as it would in front of that server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp_types import TextContent

from app.demo.upstream import DemoMarket
from app.protocol import HANDSHAKE_VERSIONS
from tests.harness import UPSTREAM, AirlockUnderTest, mcp_client, new_task, running_airlock, settings_for_test
from tests.npmservers import npm_server
from tests.stdio.conftest import filesystem_policy


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    path = (tmp_path / "sandbox").resolve()
    path.mkdir()
    (path / "notes.txt").write_text("hello from the sandbox\n", encoding="utf-8")
    return path


@pytest.fixture
async def airlock(
    tmp_path: Path, upstream_url: str, database_url: str, sandbox: Path
) -> AsyncIterator[AirlockUnderTest]:
    files_policy = tmp_path / "files.json"
    files_policy.write_text(json.dumps(filesystem_policy(sandbox)), encoding="utf-8")
    command = [str(npm_server("@modelcontextprotocol/server-filesystem")), str(sandbox)]
    settings = settings_for_test(
        tmp_path,
        upstream_url,
        database_url,
        upstreams=[
            {"name": UPSTREAM, "url": upstream_url, "policy": str(tmp_path / "policy.json")},
            {"name": "files", "command": command, "policy": str(files_policy)},
        ],
        endpoints=[{"name": "team", "upstreams": [UPSTREAM, "files"], "prefixes": {UPSTREAM: "market"}}],
        approvals={"hold_seconds": 30},
    )
    async with running_airlock(settings) as running:
        yield running


def text_of(result: Any) -> str:
    return " ".join(item.text for item in result.content if isinstance(item, TextContent))


async def test_one_endpoint_lists_the_http_and_the_stdio_servers_tools_and_holds_a_write(
    airlock: AirlockUnderTest, market: DemoMarket, sandbox: Path, mode: str
) -> None:
    task = new_task(market, title="Water the plants")
    token = await airlock.agent_token()
    async with mcp_client(f"{airlock.url}/mcp/team", token, mode=mode) as client:
        # The stdio server speaks the handshake era only, so the endpoint does too (auto falls back).
        assert client.protocol_version in HANDSHAKE_VERSIONS
        names = {tool.name for tool in (await client.list_tools()).tools}
        read = await client.call_tool("files__read_text_file", {"path": str(sandbox / "notes.txt")})
        outside = await client.call_tool("files__read_text_file", {"path": "/etc/passwd"})
        got = await client.call_tool("market__em_get_task", {"task_id": task.id})
        target = sandbox / "written.txt"
        write = asyncio.ensure_future(client.call_tool("files__write_file", {"path": str(target), "content": "hi"}))
        pending = await airlock.wait_pending()
        assert (pending["upstream"], pending["tool"]) == ("files", "write_file")
        assert not target.exists()
        assert (await airlock.decide(pending["id"])).status_code == 200
        async with asyncio.timeout(20):
            written = await write
    assert {"files__read_text_file", "files__write_file", "market__em_get_task"} <= names
    assert text_of(read).strip() == "hello from the sandbox"
    assert outside.is_error and "outside the sandbox" in text_of(outside)
    assert got.structured_content["title"] == "Water the plants"
    assert not written.is_error, text_of(written)
    assert target.read_text(encoding="utf-8") == "hi"
    assert (await airlock.approval(pending["id"]))["status"] == "completed"
