"""Migration 0009 adds the escalation columns without touching existing approvals, and drops them again.

Provenance: Airlock-defined (issue 18 item 3). Runs the real migrations up, down and up on
SQLite, and on PostgreSQL too under `AIRLOCK_TEST_DATABASE=postgres`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command

from app.store.migrate import alembic_config
from tests.store.test_migration_0006 import approval, empty_database, execute, insert_approval, rows

__all__ = ["empty_database"]  # the fixture, shared with the 0006 test

ESCALATION_COLUMNS = ("escalate_at", "escalate_to", "escalated_at")


def without_slack_columns(approval_id: str) -> dict[str, object]:
    values = approval(approval_id, status="pending")
    for column in ("slack_routing", "slack_channel", "slack_ts"):
        del values[column]
    return values


def columns(url: str, table: str) -> set[str]:
    return set(asyncio.run(rows(url, f"SELECT * FROM {table} LIMIT 1"))[0])


def test_escalation_columns_come_and_go_and_existing_approvals_never_escalate(empty_database: str) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "0007")
    outbox_row: tuple[str, dict[str, Any]] = (
        "INSERT INTO slack_outbox (approval_id, channel, next_attempt_at, created_at, updated_at) "
        "VALUES ('apr_old', '#ops', 3.0, 3.0, 3.0)",
        {},
    )
    asyncio.run(execute(empty_database, insert_approval(without_slack_columns("apr_old")), outbox_row))

    command.upgrade(config, "0009")
    [old] = asyncio.run(rows(empty_database, "SELECT escalate_at, escalate_to, escalated_at FROM approvals"))
    assert old == dict.fromkeys(ESCALATION_COLUMNS), "an approval parked before 0009 has no escalation"
    [shown] = asyncio.run(rows(empty_database, "SELECT escalation_shown FROM slack_outbox"))
    assert not shown["escalation_shown"]

    command.downgrade(config, "0007")
    assert not set(ESCALATION_COLUMNS) & columns(empty_database, "approvals")
    assert "escalation_shown" not in columns(empty_database, "slack_outbox")

    command.upgrade(config, "0009")
    assert set(ESCALATION_COLUMNS) <= columns(empty_database, "approvals")
