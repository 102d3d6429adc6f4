"""Fail closed: when the database is unreachable, Airlock refuses with a reason and never answers 500.

Provenance: Airlock-defined (invariant 8, docs/architecture.md), against a database URL nothing listens on.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.harness import running_airlock, settings_for_test
from tests.net import free_port


async def test_an_unreachable_database_gets_a_503_with_a_reason_not_a_500(tmp_path: Path) -> None:
    dead = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test"
    settings = settings_for_test(tmp_path, "http://127.0.0.1:9/mcp", dead)
    async with running_airlock(settings) as airlock, httpx.AsyncClient(timeout=30) as http:
        mcp = await http.post(
            airlock.mcp_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": "Bearer alk_agent_whatever", "Accept": "application/json, text/event-stream"},
        )
        api = await http.get(f"{airlock.url}/api/approvals", headers={"Authorization": "Bearer alk_rev_x"})
    assert mcp.status_code == 503
    assert mcp.json()["error"]["message"].endswith("nothing was forwarded")
    assert api.status_code == 503 and "nothing was forwarded" in api.json()["error"]
