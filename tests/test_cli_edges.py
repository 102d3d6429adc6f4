"""The CLI's rough edges (issue 13, item 4): each one a behaviour with its test.

Provenance: Airlock-defined (issue 13, "the rough edges"): a taken port, a database the command
cannot use, an audit table a multi-line outcome breaks, local times without a zone, a status no
approval can have, a log line written twice, and seven Alembic lines before every command.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import app.store.db as db_module
from app.demo.upstream import DemoMarket
from tests.harness import SECRET_KEY, AirlockUnderTest
from tests.processes import AirlockProcess
from tests.test_cli import cli, one_line_error, parked_cancel, write_config


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port some other program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------- serve on a taken port


def test_serve_on_a_port_in_use_refuses_in_one_line_before_it_says_it_listens(
    tmp_path: Path, taken_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="airlock")
    config = write_config(tmp_path)
    line = one_line_error(cli("serve", "--config", str(config), "--port", str(taken_port)))
    assert line.startswith(f"airlock: port {taken_port} on 127.0.0.1 is in use; ")
    assert "listening" not in caplog.text
    assert not (tmp_path / "cli.db").exists(), "refused before migrating anything"


def test_serve_with_the_metrics_port_in_use_refuses_in_one_line_too(tmp_path: Path, taken_port: int) -> None:
    config = write_config(tmp_path)
    with config.open("a", encoding="utf-8") as toml:
        toml.write(f'\n[metrics]\nlisten = "127.0.0.1:{taken_port}"\n')
    line = one_line_error(cli("serve", "--config", str(config), "--port", "0"))
    assert line.startswith(f"airlock: port {taken_port} on 127.0.0.1 is in use; ")
    assert not (tmp_path / "cli.db").exists(), "refused before migrating anything"


# --------------------------------------------------------------------------- database failures


def test_a_read_only_sqlite_database_is_one_line_saying_to_make_it_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests run as root, whom chmod does not stop: SQLite's query_only makes every write fail the same way."""
    config = str(write_config(tmp_path))
    assert cli("migrate", "--config", config).exit_code == 0
    configure = db_module._configure_sqlite

    def read_only(connection, record):  # type: ignore[no-untyped-def]
        configure(connection, record)
        connection.cursor().execute("PRAGMA query_only = ON")

    monkeypatch.setattr(db_module, "_configure_sqlite", read_only)
    line = one_line_error(cli("tokens", "create", "--agent", "claude-desktop", "--config", config))
    assert f"the database at sqlite+aiosqlite:///{tmp_path / 'cli.db'} failed: " in line
    assert "readonly database" in line and "writable" in line


def test_a_database_missing_airlocks_tables_is_one_line_saying_what_to_check(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    assert cli("migrate", "--config", config).exit_code == 0
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        conn.execute("DROP TABLE agent_tokens")
    line = one_line_error(cli("tokens", "list", "--config", config))
    assert "no such table: agent_tokens" in line and "run `airlock migrate`" in line


@pytest.mark.parametrize(
    "command",
    [("tokens", "create", "--agent", "a"), ("reviewers", "list"), ("approvals", "list"), ("audit",)],
    ids=" ".join,
)
def test_an_unreachable_postgresql_is_one_line_for_every_command(
    tmp_path: Path, closed_port: int, command: tuple[str, ...]
) -> None:
    config = write_config(tmp_path, f"postgresql+asyncpg://airlock:hunter2@127.0.0.1:{closed_port}/airlock")
    line = one_line_error(cli(*command, "--config", str(config)))
    assert f"postgresql+asyncpg://***@127.0.0.1:{closed_port}/airlock" in line and "hunter2" not in line
    assert "check that the database server is running" in line


# --------------------------------------------------------------------------- audit table


def _audit_entry(database: Path, **values: object) -> None:
    entry = {
        "at": time.time(),
        "event": "executed",
        "agent": "agent-1",
        "tool": "em_cancel_task",
        "decision": "approve",
        **values,
    }
    with sqlite3.connect(database) as conn:
        conn.execute(
            f"INSERT INTO audit_log ({', '.join(entry)}) VALUES ({', '.join('?' * len(entry))})", list(entry.values())
        )


def test_audit_prints_a_header_and_each_entry_on_one_line_however_long_its_outcome(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    assert cli("migrate", "--config", config).exit_code == 0
    outcome = "line one\nline two\r\n" + "x" * 500
    _audit_entry(tmp_path / "cli.db", outcome=outcome)
    result = cli("audit", "--config", config)
    assert result.exit_code == 0, result.output
    [header, row] = result.stdout.splitlines()
    assert header.split() == ["TIME", "EVENT", "DECISION", "AGENT", "TOOL", "RULE", "LATENCY", "DETAIL"]
    assert "line one\\nline two\\nxxx" in row and row.endswith("…") and len(row) < 250
    [entry] = list(cli("audit", "--json", "--config", config).stdout.splitlines())
    assert outcome in entry.encode().decode("unicode_escape"), "--json keeps the whole value"


def test_audit_with_no_entries_says_so_on_stderr_and_prints_no_header(tmp_path: Path) -> None:
    result = cli("audit", "--config", str(write_config(tmp_path)))
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == "no audit entries matched\n"


# --------------------------------------------------------------------------- times in UTC


def test_the_cli_prints_times_in_utc_marked_z(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    assert cli("tokens", "create", "--agent", "claude-desktop", "--config", config).exit_code == 0
    before = datetime.now(UTC)
    [_header, row] = cli("tokens", "list", "--config", config).stdout.splitlines()
    shown = datetime.strptime(" ".join(row.split()[3:5]), "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((before - shown).total_seconds()) < 60
    _audit_entry(tmp_path / "cli.db", at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp())
    assert cli("audit", "--config", config).stdout.splitlines()[1].startswith("2026-01-02 03:04:05Z ")


# --------------------------------------------------------------------------- statuses


@pytest.mark.parametrize("status", ["bogus", "pending,bogus", "Pending"])
def test_a_status_no_approval_can_have_is_a_usage_error(tmp_path: Path, status: str) -> None:
    result = cli("approvals", "list", "--status", status, "--config", str(write_config(tmp_path)))
    assert result.exit_code == 2 and "Invalid value for '--status'" in result.stderr
    assert "'pending'" in result.stderr and "'outcome_unknown'" in result.stderr, "the choices are listed"
    assert not (tmp_path / "cli.db").exists()


@pytest.mark.parametrize("status", ["all", "pending,approved", "outcome_unknown"])
def test_known_statuses_and_all_are_accepted(tmp_path: Path, status: str) -> None:
    result = cli("approvals", "list", "--status", status, "--config", str(write_config(tmp_path)))
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------- log lines


async def test_each_change_of_status_is_logged_once_not_again_when_the_outcome_is_delivered(
    airlock: AirlockUnderTest, market: DemoMarket, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="airlock.approvals")
    await airlock.reviewer_token("carol")
    async with parked_cancel(airlock, market) as (call, approval):
        await airlock.decide(approval["id"], "approve", reviewer="carol")
        async with asyncio.timeout(10):
            await call
        await airlock.wait_steps(approval["id"], "delivered")
    async with parked_cancel(airlock, market) as (call, rejected):
        await airlock.decide(rejected["id"], "reject", reviewer="carol", reason="not now")
        async with asyncio.timeout(10):
            await call
        await airlock.wait_steps(rejected["id"], "delivered")
    async with asyncio.timeout(5):  # channels are told in background tasks, after each change commits
        await asyncio.gather(*airlock.runtime.ledger._background)
    lines = [record.getMessage() for record in caplog.records if record.name == "airlock.approvals"]
    assert sum(line.endswith(f"{approval['id']} (em_cancel_task): completed by carol") for line in lines) == 1, lines
    assert sum(line.endswith(f"{rejected['id']} (em_cancel_task): rejected by carol") for line in lines) == 1, lines


async def test_serve_logs_its_own_lines_but_not_the_libraries_informational_chatter(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    server = await AirlockProcess(config).start()
    server.stop()
    log = server.log.read_text()
    assert f"listening on http://127.0.0.1:{server.port}" in log
    assert "alembic" not in log, log


def test_verbose_shows_the_libraries_informational_lines(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    env = {"AIRLOCK_SECRET_KEY": SECRET_KEY, "PATH": "/usr/bin:/bin"}
    quiet = subprocess.run(
        [sys.executable, "-m", "app", "migrate", "--config", config],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    verbose = subprocess.run(
        [sys.executable, "-m", "app", "--verbose", "migrate", "--config", config],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    assert "alembic" not in quiet.stderr
    assert "INFO    alembic.runtime.plugins: setup plugin" in verbose.stderr
