"""Health that means something: `/livez` while the process serves, `/readyz` only while it can do its
job, with the failed check named.

Provenance: Airlock-defined (issue 16, "Health"): a real Airlock on loopback, a database made
read-only or taken away, a policy file broken on disk, an upstream that is not listening.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from app.store.db import Database
from tests.conftest import StartAirlock
from tests.harness import UPSTREAM, AirlockUnderTest, running_airlock, settings_for_test


async def ready(airlock: AirlockUnderTest) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(f"{airlock.url}/readyz")


async def test_a_healthy_airlock_is_live_and_ready_with_every_check_named(airlock: AirlockUnderTest) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        live = await http.get(f"{airlock.url}/livez")
    assert live.status_code == 200 and live.json()["status"] == "ok"
    answer = await ready(airlock)
    assert answer.status_code == 200 and answer.json()["status"] == "ready"
    assert {name: check["ok"] for name, check in answer.json()["checks"].items()} == {
        "database": True,
        f"policy:{UPSTREAM}": True,
        f"upstream:{UPSTREAM}": True,
    }


async def test_a_policy_file_broken_on_disk_makes_airlock_not_ready_and_says_which(airlock: AirlockUnderTest) -> None:
    airlock.policy_path.write_text('{"version": "1", "rules": [{"tool": "x", "acton": "allow"}]}', encoding="utf-8")
    stamp = time.time_ns() + 1_000_000_000
    os.utime(airlock.policy_path, ns=(stamp, stamp))
    airlock.runtime.policies.check_now()
    answer = await ready(airlock)
    assert answer.status_code == 503 and answer.json()["status"] == "not ready"
    check = answer.json()["checks"][f"policy:{UPSTREAM}"]
    assert check["ok"] is False and "not in force" in check["error"]
    assert answer.json()["checks"]["database"]["ok"] is True


async def test_a_database_that_takes_no_writes_makes_airlock_not_ready(
    airlock: AirlockUnderTest, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's query_only stands for a read-only database here")
    db: Database = airlock.runtime.db

    def read_only(connection: Any, _record: Any) -> None:
        connection.cursor().execute("PRAGMA query_only = ON")

    await db.engine.dispose()  # new connections get the pragma
    event.listen(db.engine.sync_engine, "connect", read_only)
    try:
        answer = await ready(airlock)
    finally:
        event.remove(db.engine.sync_engine, "connect", read_only)
        await db.engine.dispose()
    assert answer.status_code == 503
    check = answer.json()["checks"]["database"]
    assert (check["ok"], check["required"]) == (False, True) and "readonly" in check["error"]


async def test_an_unreachable_database_makes_airlock_not_ready_without_a_traceback(
    start_airlock: StartAirlock, tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("turns the SQLite file into a directory")
    airlock = await start_airlock()
    await airlock.runtime.db.engine.dispose()
    (tmp_path / "airlock.db").unlink()
    (tmp_path / "airlock.db").mkdir()  # the database file is now a directory: every connection fails
    answer = await ready(airlock)
    assert answer.status_code == 503
    assert answer.json()["checks"]["database"]["ok"] is False
    failed_requests = [record for record in caplog.records if record.name == "airlock" and record.exc_info]
    assert failed_requests == [], "the check answered; no request failed with a traceback"


async def test_an_upstream_that_is_down_is_reported_but_does_not_make_airlock_unready(
    tmp_path: Path, database_url: str
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    settings = settings_for_test(tmp_path, f"http://127.0.0.1:{port}/mcp", database_url)
    async with running_airlock(settings) as airlock:
        answer = await ready(airlock)
    assert answer.status_code == 200
    check = answer.json()["checks"][f"upstream:{UPSTREAM}"]
    assert check["ok"] is False and check["required"] is False and f"127.0.0.1:{port}" in check["error"]
