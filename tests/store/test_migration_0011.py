"""Migration 0011 (grants) adds the grants table and the approvals' `grant_policy`, and removes them
again, losing no approval.

Provenance: Airlock-defined (issue 18, item 4). Runs the real migrations on SQLite, and on
PostgreSQL too under `AIRLOCK_TEST_DATABASE=postgres`, up, down and up again.
"""

from __future__ import annotations

import asyncio

from alembic import command

from app.store.migrate import alembic_config
from tests.store.test_migration_0006 import empty_database, execute, insert_approval, rows
from tests.store.test_migration_0009 import without_slack_columns

__all__ = ["empty_database"]

PREVIOUS = "0010"
"""The revision 0011 follows."""

GRANT = (
    "INSERT INTO grants (id, agent, upstream, tool, args_hash, created_by, approval_id, created_at, expires_at) "
    "VALUES ('grt_1', 'agent-1', 'market', 'em_cancel_task', NULL, 'alice', 'apr_old', 2.5, 3.5)"
)


def test_approvals_parked_before_grants_offer_none_and_survive_down_and_up(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, PREVIOUS)
    asyncio.run(execute(empty_database, insert_approval(without_slack_columns("apr_old"))))

    command.upgrade(config, "0011")
    assert asyncio.run(rows(empty_database, "SELECT id, grant_policy FROM approvals")) == [
        {"id": "apr_old", "grant_policy": None}
    ]
    asyncio.run(execute(empty_database, (GRANT, {})))
    assert asyncio.run(rows(empty_database, "SELECT id, args_hash, revoked_at FROM grants")) == [
        {"id": "grt_1", "args_hash": None, "revoked_at": None}
    ]

    command.downgrade(config, PREVIOUS)
    assert asyncio.run(rows(empty_database, "SELECT id, status FROM approvals")) == [
        {"id": "apr_old", "status": "pending"}
    ]
    command.upgrade(config, "head")
    assert asyncio.run(rows(empty_database, "SELECT id, grant_policy FROM approvals")) == [
        {"id": "apr_old", "grant_policy": None}
    ]
    assert asyncio.run(rows(empty_database, "SELECT * FROM grants")) == []
