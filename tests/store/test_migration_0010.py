"""Migration 0010 (quorum) adds the votes table and columns, and removes them again, losing no approval.

Provenance: Airlock-defined (issue 18, item 2). Runs the real migrations on SQLite, and on
PostgreSQL too under `AIRLOCK_TEST_DATABASE=postgres`, up, down and up again.
"""

from __future__ import annotations

import asyncio

from alembic import command

from app.store.migrate import alembic_config
from tests.store.test_migration_0006 import empty_database, execute, insert_approval, rows

__all__ = ["empty_database"]

PREVIOUS = "0009"
"""The revision 0010 follows."""


def approval_before_quorums(approval_id: str) -> dict[str, object]:
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
        "status": "pending",
        "created_at": 1.0,
        "expires_at": 2.0,
        "updated_at": 3.0,
    }


def test_approvals_parked_before_quorums_need_one_approval_and_survive_down_and_up(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, PREVIOUS)
    asyncio.run(execute(empty_database, insert_approval(approval_before_quorums("apr_old"))))

    command.upgrade(config, "0010")
    upgraded = asyncio.run(rows(empty_database, "SELECT id, quorum, reviewer_groups, votes FROM approvals"))
    assert upgraded == [{"id": "apr_old", "quorum": 1, "reviewer_groups": None, "votes": None}]
    vote = (
        "INSERT INTO approval_votes (approval_id, identity, reviewer, via, at) "
        "VALUES ('apr_old', 'alice', 'Alice', 'api', 2.5)"
    )
    asyncio.run(execute(empty_database, (vote, {})))
    assert asyncio.run(rows(empty_database, "SELECT reviewer FROM approval_votes")) == [{"reviewer": "Alice"}]

    command.downgrade(config, PREVIOUS)
    assert asyncio.run(rows(empty_database, "SELECT id, status FROM approvals")) == [
        {"id": "apr_old", "status": "pending"}
    ]
    command.upgrade(config, "head")
    assert asyncio.run(rows(empty_database, "SELECT id, quorum FROM approvals")) == [{"id": "apr_old", "quorum": 1}]
    assert asyncio.run(rows(empty_database, "SELECT * FROM approval_votes")) == []
