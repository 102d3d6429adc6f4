"""An allowed call makes no database round trip in steady state; its audit entry is written in batches.

Provenance: Airlock-defined (issue 12, "Performance: halve the gateway's cost per call": no database
round trip on an allowed call's path in steady state: tokens from a cache, handshake sessions
cached, audit written in batches off the request path). Statements are counted with SQLAlchemy's
`before_cursor_execute` event, never timed.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select

from app.demo.upstream import DemoMarket
from app.store.db import Database
from app.store.models import audit_log
from tests.harness import AirlockUnderTest, new_task, running_airlock, settings_for_test
from tests.rawmcp import ACCEPT, MODERN_VERSION, RawSession, modern_envelope

CALLS = 50


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every SQL statement Airlock runs while the block runs (an executemany counts once)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


@pytest.fixture
async def airlock(tmp_path: Path, upstream_url: str, database_url: str) -> AsyncIterator[AirlockUnderTest]:
    """Airlock with the production token cache (the suite's default turns it off)."""
    settings = settings_for_test(tmp_path, upstream_url, database_url, token_cache_seconds=5)
    async with running_airlock(settings) as running:
        yield running


def audit_inserts(seen: list[str]) -> list[str]:
    return [s for s in seen if s.upper().startswith("INSERT INTO AUDIT_LOG")]


def on_the_call_path(seen: list[str]) -> list[str]:
    """Reads of tokens and sessions, and every write but the audit log's.

    Background loops (approval expiry, the safety poll) read the approvals table on their own
    schedule, whatever the calls do; they are not on the call's path and are left out.
    """
    tables = re.compile(r"\b(agent_tokens|sessions)\b", re.IGNORECASE)
    writes = re.compile(r"^(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
    return [s for s in seen if s not in audit_inserts(seen) and (tables.search(s) or writes.match(s))]


async def test_50_allowed_calls_on_one_handshake_session_read_nothing_and_audit_in_batches(
        airlock: AirlockUnderTest, market: DemoMarket) -> None:
    task = new_task(market)
    call = {"jsonrpc": "2.0", "method": "tools/call",
            "params": {"name": "em_get_task", "arguments": {"task_id": task.id}}}
    async with httpx.AsyncClient(timeout=10) as http:
        session = RawSession(http, airlock.mcp_url, await airlock.agent_token())
        await session.initialize()
        first = await http.post(session.url, json={**call, "id": 0}, headers=session.headers())
        assert first.status_code == 200, first.text
        await airlock.runtime.audit.flush()
        with statements(airlock.runtime.db) as seen:
            for n in range(1, CALLS + 1):
                response = await http.post(session.url, json={**call, "id": n}, headers=session.headers())
                assert response.status_code == 200 and "error" not in response.json(), response.text
            await airlock.runtime.audit.flush()
    inserts = audit_inserts(seen)
    assert on_the_call_path(seen) == []
    assert 1 <= len(inserts) < CALLS
    async with airlock.runtime.db.read() as conn:
        entries = (await conn.execute(select(func.count()).select_from(audit_log).where(
            audit_log.c.event == "call", audit_log.c.tool == "em_get_task"))).scalar_one()
    assert entries == CALLS + 1


async def test_50_allowed_modern_calls_read_nothing(airlock: AirlockUnderTest, market: DemoMarket) -> None:
    task = new_task(market)
    token = await airlock.agent_token()
    headers = {"authorization": f"Bearer {token}", "accept": ACCEPT, "content-type": "application/json",
               "mcp-protocol-version": MODERN_VERSION, "mcp-method": "tools/call", "mcp-name": "em_get_task"}
    call = {"jsonrpc": "2.0", "method": "tools/call",
            "params": {"name": "em_get_task", "arguments": {"task_id": task.id}, "_meta": modern_envelope()}}
    async with httpx.AsyncClient(timeout=10) as http:
        first = await http.post(airlock.mcp_url, json={**call, "id": 0}, headers=headers)
        assert first.status_code == 200, first.text
        await airlock.runtime.audit.flush()
        with statements(airlock.runtime.db) as seen:
            for n in range(1, CALLS + 1):
                response = await http.post(airlock.mcp_url, json={**call, "id": n}, headers=headers)
                assert response.status_code == 200 and "error" not in response.json(), response.text
            await airlock.runtime.audit.flush()
    inserts = audit_inserts(seen)
    assert on_the_call_path(seen) == []
    assert 1 <= len(inserts) < CALLS
