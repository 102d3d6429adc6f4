"""Merged lists page honestly: each upstream's pages, read in turn, through the endpoint's own cursor.

Provenance: spec ("Pagination": cursors are opaque, the client follows `nextCursor` until none) and
Airlock-defined merging (issue 14, item 2). The paginating upstream is the official SDK's
low-level `Server` with its own `tools/list` handler, two tools a page; the other is the notes
server of `test_endpoints.py` (one page). The agent is the official `mcp` Client, both eras.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.server.lowlevel.server import Server
from mcp.server.transport_security import TransportSecuritySettings

from tests.gateway.test_endpoints import build_notes
from tests.harness import AirlockUnderTest, mcp_client, running_airlock, settings_for_test
from tests.net import serve

PAGE = 2
TOOLS = [f"t{index}" for index in range(5)]


def build_pager(cursors_seen: list[str | None]) -> Any:
    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        cursor = params.cursor if params is not None else None
        cursors_seen.append(cursor)
        start = int(cursor) if cursor else 0
        page = [types.Tool(name=name, input_schema={"type": "object"}) for name in TOOLS[start : start + PAGE]]
        more = start + PAGE < len(TOOLS)
        return types.ListToolsResult(tools=page, next_cursor=str(start + PAGE) if more else None)

    server: Server[Any] = Server("pager", on_list_tools=list_tools)
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return server.streamable_http_app(streamable_http_path="/mcp", transport_security=security)


@pytest.fixture
def cursors_seen() -> list[str | None]:
    return []


@pytest.fixture
async def airlock(tmp_path: Path, database_url: str, cursors_seen: list[str | None]) -> AsyncIterator[AirlockUnderTest]:
    allow = tmp_path / "allow.json"
    allow.write_text('{"version": "1", "default": "allow"}', encoding="utf-8")
    async with serve(build_notes(Counter())) as notes, serve(build_pager(cursors_seen)) as pager:
        settings = settings_for_test(
            tmp_path,
            f"{notes}/mcp",
            database_url,
            upstreams=[
                {"name": "notes", "url": f"{notes}/mcp", "policy": str(allow)},
                {"name": "pager", "url": f"{pager}/mcp", "policy": str(allow)},
            ],
            endpoints=[{"name": "team", "upstreams": ["notes", "pager"]}],
        )
        async with running_airlock(settings) as running:
            yield running


async def test_following_next_cursor_reads_every_upstreams_pages_once_each(
    airlock: AirlockUnderTest, cursors_seen: list[str | None], mode: str
) -> None:
    pages: list[list[str]] = []
    async with mcp_client(f"{airlock.url}/mcp/team", await airlock.agent_token(), mode=mode) as client:
        cursor: str | None = None
        while True:
            result = await client.list_tools(cursor=cursor, cache_mode="refresh")
            pages.append([tool.name for tool in result.tools])
            cursor = result.next_cursor
            if cursor is None:
                break
            assert cursor not in ("2", "4"), "the endpoint hands out its own cursors, not an upstream's"
    assert pages == [
        ["notes__em_get_task", "notes__write_note", "pager__t0", "pager__t1"],
        ["pager__t2", "pager__t3"],
        ["pager__t4"],
    ]
    assert cursors_seen == [None, "2", "4"]
