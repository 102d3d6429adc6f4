"""Retention: the sweeper prunes old audit entries and finished approvals; `airlock audit export` ships them first.

Provenance: Airlock-defined (issue 16, item 6, "Retention": audit entries and old approvals are
pruned after configurable retention periods, with `airlock audit export` to JSON Lines before
pruning, for teams that ship them to a SIEM).

Rows are written at times far in the future and pruned with a `now` further still, so the
gateway's own background sweeper (running on the real clock) never touches them.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from app import cli as cli_module
from app.approvals import sweeper
from app.approvals.sweeper import Pruned
from app.store.db import Database
from app.store.models import approvals, audit_log, slack_outbox, streams
from tests.conftest import StartAirlock
from tests.harness import AirlockUnderTest
from tests.test_cli import cli, one_line_error, write_config

DAY = 86400.0
NOW = time.time() + 1000 * DAY
"""The clock the tests prune at: far past anything the running gateway writes or prunes."""


def approval(approval_id: str, status: str, finished_days_ago: float, continues: str | None = None) -> dict[str, Any]:
    at = NOW - finished_days_ago * DAY
    return {
        "id": approval_id,
        "upstream": "execution-market",
        "tool": "em_cancel_task",
        "agent": "agent-1",
        "arguments": "{}",
        "args_hash": approval_id.ljust(64, "0")[:64],
        "params": "{}",
        "forward_headers": "{}",
        "era": "legacy",
        "protocol_version": "2025-06-18",
        "request_id": "1",
        "policy_rule": "r",
        "policy_version": "v",
        "status": status,
        "created_at": at - 60,
        "expires_at": at + 1800,
        "updated_at": at,
        "continues": continues,
    }


def entry(at: float, n: int = 0) -> dict[str, Any]:
    return {
        "at": at,
        "event": "call",
        "agent": "agent-1",
        "upstream": "execution-market",
        "tool": "em_cancel_task",
        "decision": "allow",
        "rule": f"rule-{n}",
        "argument_keys": "[]",
        "args_hash": "0" * 64,
    }


async def put(db: Database, table: Any, rows: list[dict[str, Any]]) -> None:
    async with db.write() as conn:
        await conn.execute(insert(table), rows)


async def column(db: Database, table: Any, name: str) -> set[Any]:
    async with db.read() as conn:
        return set((await conn.execute(select(table.c[name]))).scalars())


async def count(db: Database, table: Any) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


# --------------------------------------------------------------------------- pruning


async def test_audit_entries_older_than_the_retention_are_pruned_and_newer_ones_kept(airlock: AirlockUnderTest) -> None:
    db = airlock.runtime.db
    await put(
        db,
        audit_log,
        [entry(NOW - 91 * DAY, 1), entry(NOW - 90 * DAY - 1, 2), entry(NOW - 89 * DAY, 3), entry(NOW - 60, 4)],
    )
    pruned = await airlock.runtime.sweeper.prune(NOW)
    assert pruned.audit_entries == 2
    assert await column(db, audit_log, "rule") >= {"rule-3", "rule-4"}
    assert not await column(db, audit_log, "rule") & {"rule-1", "rule-2"}
    assert (await airlock.runtime.sweeper.prune(NOW)).audit_entries == 0, "a second pass finds nothing"


async def test_finished_approvals_past_retention_go_with_their_dependents_and_the_rest_stay(
    airlock: AirlockUnderTest,
) -> None:
    db = airlock.runtime.db
    await put(
        db,
        approvals,
        [
            approval("old-completed", "completed", 91),
            approval("old-rejected", "rejected", 120),
            approval("old-expired", "expired", 91),
            approval("old-outcome-unknown", "outcome_unknown", 95),
            approval("old-pending", "pending", 200),
            approval("old-approved", "approved", 200),
            approval("old-executing", "executing", 200),
            approval("recent-completed", "completed", 89),
            approval("old-streamed", "completed", 91),
            approval("old-continued", "completed", 91),
            approval("successor", "pending", 91, continues="old-continued"),
        ],
    )
    await put(
        db,
        slack_outbox,
        [
            {
                "approval_id": "old-completed",
                "channel": "C1",
                "rendered_status": "completed",
                "settled": True,
                "next_attempt_at": NOW,
                "created_at": NOW - 91 * DAY,
                "updated_at": NOW - 91 * DAY,
            }
        ],
    )
    await put(
        db,
        streams,
        [
            {
                "id": "s1",
                "approval_id": "old-streamed",
                "agent": "agent-1",
                "request_id": "1",
                "hold_until": NOW,
                "created_at": NOW - 91 * DAY,
            }
        ],
    )
    pruned = await airlock.runtime.sweeper.prune(NOW)
    assert pruned.approvals == 4
    assert await column(db, approvals, "id") == {
        "old-pending",
        "old-approved",
        "old-executing",
        "recent-completed",
        "old-streamed",
        "old-continued",
        "successor",
    }
    assert await count(db, slack_outbox) == 0, "the Slack outbox row went first"


async def test_a_continued_approval_goes_after_its_finished_successor(airlock: AirlockUnderTest) -> None:
    db = airlock.runtime.db
    await put(
        db, approvals, [approval("first", "completed", 92), approval("second", "completed", 91, continues="first")]
    )
    assert (await airlock.runtime.sweeper.prune(NOW)).approvals == 1
    assert await column(db, approvals, "id") == {"first"}
    assert (await airlock.runtime.sweeper.prune(NOW)).approvals == 1
    assert await column(db, approvals, "id") == set()


async def test_an_outcome_within_result_retention_is_kept_whatever_retention_days_says(
    start_airlock: StartAirlock,
) -> None:
    airlock = await start_airlock(approvals={"retention_days": 0.25, "result_retention_seconds": DAY})
    db = airlock.runtime.db
    await put(db, approvals, [approval("half-day", "completed", 0.5), approval("two-days", "failed", 2)])
    assert (await airlock.runtime.sweeper.prune(NOW)).approvals == 1
    assert await column(db, approvals, "id") == {"half-day"}


async def test_one_pass_prunes_a_bounded_number_of_rows(
    airlock: AirlockUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweeper, "_PURGE_BATCH", 2)
    monkeypatch.setattr(sweeper, "_PURGE_BATCHES", 2)
    db = airlock.runtime.db
    await put(db, audit_log, [entry(NOW - 100 * DAY, n) for n in range(9)])
    await put(db, approvals, [approval(f"a{n}", "completed", 100) for n in range(5)])
    passes = [await airlock.runtime.sweeper.prune(NOW) for _ in range(4)]
    assert [p.audit_entries for p in passes] == [4, 4, 1, 0]
    assert [p.approvals for p in passes] == [4, 1, 0, 0]


async def test_a_retention_of_zero_days_keeps_everything(start_airlock: StartAirlock) -> None:
    airlock = await start_airlock(audit={"retention_days": 0}, approvals={"retention_days": 0})
    db = airlock.runtime.db
    await put(db, audit_log, [entry(NOW - 10_000 * DAY)])
    await put(db, approvals, [approval("ancient", "completed", 10_000)])
    assert await airlock.runtime.sweeper.prune(NOW) == Pruned(0, 0)
    assert (await count(db, audit_log), await column(db, approvals, "id")) == (1, {"ancient"})


# --------------------------------------------------------------------------- airlock audit export


def _exported(config: Path, *args: str) -> list[dict[str, Any]]:
    result = cli("audit", "export", "--config", str(config), *args)
    assert result.exit_code == 0, result.output
    assert result.stdout == "" or result.stdout.endswith("\n")
    return [json.loads(line) for line in result.stdout.splitlines()]


def _migrated(tmp_path: Path, database_url: str, rows: list[dict[str, Any]]) -> Path:
    config = write_config(tmp_path, database_url)
    assert cli("migrate", "--config", str(config)).exit_code == 0

    async def fill() -> None:
        db = Database(database_url)
        try:
            await put(db, audit_log, rows)
        finally:
            await db.dispose()

    asyncio.run(fill())
    return config


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_export_writes_json_lines_oldest_first_with_every_field_and_the_filters(
    tmp_path: Path, database_url: str
) -> None:
    # Inserted out of time order; the second and third share a time.
    rows = [
        entry(_ts("2026-03-01T00:00:00+00:00"), 3),
        entry(_ts("2026-01-01T00:00:00.250000+00:00"), 1),
        entry(_ts("2026-02-01T00:00:00+00:00"), 2),
        entry(_ts("2026-02-01T00:00:00+00:00"), 22),
    ]
    config = _migrated(tmp_path, database_url, rows)
    everything = _exported(config)
    assert [e["rule"] for e in everything] == ["rule-1", "rule-2", "rule-22", "rule-3"]
    assert everything[0]["at"] == "2026-01-01T00:00:00.250000Z"
    assert set(everything[0]) == {c.name for c in audit_log.columns}
    assert everything[0]["decision"] == "allow" and everything[0]["outcome"] is None
    assert [e["rule"] for e in _exported(config, "--since", "2026-02-01T00:00:00Z")] == ["rule-2", "rule-22", "rule-3"]
    assert [e["rule"] for e in _exported(config, "--before", "2026-02-01T00:00:00Z")] == ["rule-1"]
    assert [e["rule"] for e in _exported(config, "--since", "2026-01-15", "--before", "2026-02-15")] == [
        "rule-2",
        "rule-22",
    ]
    assert _exported(config, "--since", "2027-01-01T00:00:00Z") == []


def test_a_large_export_to_a_file_is_complete_and_in_order(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_module, "_EXPORT_PAGE", 97)
    start = _ts("2026-01-01T00:00:00+00:00")
    # Ten entries share each time, so pages end in the middle of a tie.
    config = _migrated(tmp_path, database_url, [entry(start + n // 10, n) for n in range(2500)])
    output = tmp_path / "export.jsonl"
    result = cli("audit", "export", "--config", str(config), "--output", str(output))
    assert result.exit_code == 0 and result.stdout == "", result.output
    lines = output.read_text(encoding="utf-8").splitlines()
    exported = [json.loads(line) for line in lines]
    assert len(exported) == 2500 and len({e["id"] for e in exported}) == 2500
    assert [e["at"] for e in exported] == sorted(e["at"] for e in exported)
    assert {e["rule"] for e in exported} == {f"rule-{n}" for n in range(2500)}


def test_export_refuses_a_time_that_is_not_iso_in_one_line(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    assert "--since 'yesterday' is not an ISO time" in one_line_error(
        cli("audit", "export", "--config", config, "--since", "yesterday")
    )
    assert "cannot write" in one_line_error(
        cli("audit", "export", "--config", config, "--output", str(tmp_path / "missing" / "x.jsonl"))
    )


def test_airlock_audit_still_lists_and_takes_its_config_before_export(tmp_path: Path) -> None:
    config = _migrated(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}", [entry(time.time(), 7)])
    listed = cli("audit", "--config", str(config), "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout)["rule"] == "rule-7"
    exported = cli("audit", "--config", str(config), "export")
    assert exported.exit_code == 0 and json.loads(exported.stdout)["rule"] == "rule-7"
