"""Migration 0010 (quorum) adds the votes table and columns, and removes them again, losing no approval.

Provenance: Airlock-defined (issue 18, item 2). Runs the real migrations on SQLite, and on
PostgreSQL too under `AIRLOCK_TEST_DATABASE=postgres`, up, down and up again.
"""

from __future__ import annotations

import asyncio

from alembic import command

from app.store.migrate import alembic_config
from tests.store.test_migration_0006 import empty_database, execute, insert_approval, rows
from tests.store.test_migration_0009 import without_slack_columns

__all__ = ["empty_database"]

PREVIOUS = "0009"
"""The revision 0010 follows."""


def test_approvals_parked_before_quorums_need_one_approval_and_survive_down_and_up(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, PREVIOUS)
    asyncio.run(execute(empty_database, insert_approval(without_slack_columns("apr_old"))))

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
