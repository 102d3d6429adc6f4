"""An allowed call makes no database round trip in steady state; its audit entry is written in batches.

Provenance: Airlock-defined (issue 12, "Performance: halve the gateway's cost per call": no database
round trip on an allowed call's path in steady state: tokens from a cache, handshake sessions
cached, audit written in batches off the request path). Statements are counted with SQLAlchemy's
`before_cursor_execute` event, never timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Statement:
    sql: str
    in_request: bool
    """Run by a request's own task (uvicorn's `run_asgi`), i.e. on the call's path."""


@contextmanager
def statements(db: Database) -> Iterator[list[Statement]]:
    """Every SQL statement Airlock runs while the block runs (an executemany counts once)."""
    seen: list[Statement] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        task = asyncio.current_task()
        name = task.get_coro().__qualname__ if task is not None else ""  # type: ignore[union-attr]
        seen.append(Statement(" ".join(statement.split()), name.endswith("run_asgi")))

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


def on_the_call_path(seen: list[Statement]) -> list[str]:
    """Statements run by the requests themselves (background loops, audit batches included, are not)."""
    return [s.sql for s in seen if s.in_request]


def audit_inserts(seen: list[Statement]) -> list[str]:
    return [s.sql for s in seen if s.sql.upper().startswith("INSERT INTO AUDIT_LOG")]


async def test_50_allowed_calls_on_one_handshake_session_read_nothing_and_audit_in_batches(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    task = new_task(market)
    call = {
        "jsonrpc": "2.0",
        "method": "tools/call",
        "params": {"name": "em_get_task", "arguments": {"task_id": task.id}},
    }
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
        entries = (
            await conn.execute(
                select(func.count())
                .select_from(audit_log)
                .where(audit_log.c.event == "call", audit_log.c.tool == "em_get_task")
            )
        ).scalar_one()
    assert entries == CALLS + 1


async def test_50_allowed_modern_calls_read_nothing(airlock: AirlockUnderTest, market: DemoMarket) -> None:
    task = new_task(market)
    token = await airlock.agent_token()
    headers = {
        "authorization": f"Bearer {token}",
        "accept": ACCEPT,
        "content-type": "application/json",
        "mcp-protocol-version": MODERN_VERSION,
        "mcp-method": "tools/call",
        "mcp-name": "em_get_task",
    }
    call = {
        "jsonrpc": "2.0",
        "method": "tools/call",
        "params": {"name": "em_get_task", "arguments": {"task_id": task.id}, "_meta": modern_envelope()},
    }
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
