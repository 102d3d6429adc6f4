"""Migration 0006 moves Slack's data off the approvals table and back again, losing nothing.

Provenance: Airlock-defined (issue 11 item 2: channel-specific fields out of the core tables).
Runs the real migrations on SQLite, and on PostgreSQL too under `AIRLOCK_TEST_DATABASE=postgres`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text

from app.store.db import create_engine
from app.store.migrate import alembic_config
from tests.conftest import ON_POSTGRES

ROUTING = {"channel": "#ops", "users": ["U1"], "usergroups": []}


@pytest.fixture
def empty_database(tmp_path: Path) -> Iterator[str]:
    if not ON_POSTGRES:
        yield f"sqlite+aiosqlite:///{tmp_path / 'airlock.db'}"
        return
    from tests import pg

    pg.require_postgres()
    schema = f"airlock_m6_{secrets.token_hex(4)}"
    asyncio.run(pg._execute(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{pg.BASE_URL}?search_path={schema}"
    finally:
        asyncio.run(pg._execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def approval(approval_id: str, **values: Any) -> dict[str, Any]:
    return {
        "id": approval_id,
        "upstream": "market",
        "tool": "em_cancel_task",
        "agent": "agent-1",
        "arguments": "{}",
        "args_hash": approval_id,
        "params": "{}",
        "forward_headers": "{}",
        "era": "modern",
        "protocol_version": "2026-07-28",
        "request_id": "1",
        "policy_rule": "cancel",
        "policy_version": "v1",
        "status": "completed",
        "created_at": 1.0,
        "expires_at": 2.0,
        "updated_at": 3.0,
        "slack_routing": None,
        "slack_channel": None,
        "slack_ts": None,
        **values,
    }


async def execute(url: str, *statements: tuple[str, dict[str, Any]]) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for sql, values in statements:
                await conn.execute(text(sql), values)
    finally:
        await engine.dispose()


async def rows(url: str, sql: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return [dict(row._mapping) for row in await conn.execute(text(sql))]
    finally:
        await engine.dispose()


def insert_approval(values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    columns = ", ".join(values)
    return f"INSERT INTO approvals ({columns}) VALUES ({', '.join(':' + c for c in values)})", values


def test_routing_and_message_coordinates_move_to_routing_and_the_outbox_and_back(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "0005")
    outbox_row = (
        "INSERT INTO slack_outbox (approval_id, channel, rendered_status, next_attempt_at, created_at, updated_at) "
        "VALUES ('apr_queued', '#ops', 'pending', 3.0, 3.0, 3.0)"
    )
    asyncio.run(
        execute(
            empty_database,
            insert_approval(
                approval("apr_queued", slack_routing=json.dumps(ROUTING), slack_channel="C1", slack_ts="1.5")
            ),
            insert_approval(approval("apr_legacy", slack_channel="C2", slack_ts="2.5")),
            insert_approval(approval("apr_plain")),
            (outbox_row, {}),
        )
    )

    command.upgrade(config, "0006")
    routed = asyncio.run(rows(empty_database, "SELECT id, routing FROM approvals ORDER BY id"))
    assert {r["id"]: r["routing"] and json.loads(r["routing"]) for r in routed} == {
        "apr_legacy": None,
        "apr_plain": None,
        "apr_queued": {"slack": ROUTING},
    }
    outbox = asyncio.run(
        rows(empty_database, "SELECT approval_id, channel, ts, rendered_status FROM slack_outbox ORDER BY approval_id")
    )
    assert [(r["approval_id"], r["channel"], r["ts"], r["rendered_status"]) for r in outbox] == [
        ("apr_legacy", "C2", "2.5", "completed"),
        ("apr_queued", "C1", "1.5", "pending"),
    ]

    command.downgrade(config, "0005")
    restored = asyncio.run(
        rows(empty_database, "SELECT id, slack_routing, slack_channel, slack_ts FROM approvals ORDER BY id")
    )
    assert [
        (r["id"], r["slack_routing"] and json.loads(r["slack_routing"]), r["slack_channel"], r["slack_ts"])
        for r in restored
    ] == [
        ("apr_legacy", None, "C2", "2.5"),
        ("apr_plain", None, None, None),
        ("apr_queued", ROUTING, "C1", "1.5"),
    ]
    command.upgrade(config, "head")
