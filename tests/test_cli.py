"""The `airlock` command line: help texts, policy checks, one-line errors, credentials, approvals, audit.

Provenance: Airlock-defined (issue: gateway core, "a bad config fails at start with one clear
line, not a traceback"; "`--help` texts exist for every command"). Driven through
`click.testing.CliRunner`; the approval commands run against the database of a live in-process
Airlock, which is how an operator uses them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner, Result

from app.cli import main
from app.demo.upstream import DemoMarket
from app.jsonrpc import canonical_json
from app.store import audit as audit_store
from app.store import tokens as token_store
from tests import trojan
from tests.harness import DEFAULT_POLICY, SECRET_KEY, AirlockUnderTest, new_task
from tests.net import wait_for

CLEAN_ENV = {
    "AIRLOCK_SECRET_KEY": SECRET_KEY,
    "AIRLOCK_CONFIG": None,
    "DATABASE_URL": None,
    "AIRLOCK_DATABASE_URL": None,
    "AIRLOCK_PORT": None,
    "AIRLOCK_HOST": None,
    "AIRLOCK_DATA_DIR": None,
    "AIRLOCK_PUBLIC_URL": None,
    "AIRLOCK_REVIEWER": None,
}


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), prog_name="airlock", env=CLEAN_ENV)


async def acli(*args: str) -> Result:
    """`cli` from async tests: the CLI runs its own event loop, so it gets a thread."""
    return await asyncio.to_thread(cli, *args)


def one_line_error(result: Result, status: int = 2) -> str:
    """The single `airlock: …` line a user-fixable error prints, after checking nothing else came out."""
    assert result.exit_code == status, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("airlock: "), result.stderr
    return lines[0]


def write_config(directory: Path, database_url: str | None = None, *, policy: Path | None = None) -> Path:
    policy = policy or directory / "policy.json"
    if not policy.exists():
        policy.write_text(json.dumps(DEFAULT_POLICY), encoding="utf-8")
    database_url = database_url or f"sqlite+aiosqlite:///{directory / 'cli.db'}"
    config = directory / "airlock.toml"
    config.write_text(
        f'database_url = "{database_url}"\ndata_dir = "{directory / "data"}"\n'
        f'[[upstreams]]\nname = "execution-market"\nurl = "http://127.0.0.1:9/mcp"\npolicy = "{policy}"\n',
        encoding="utf-8",
    )
    return config


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))


ALL_COMMANDS = dict(command_paths(main))
EXPECTED_COMMANDS = {
    ("serve",),
    ("migrate",),
    ("demo",),
    ("audit",),
    ("tokens",),
    ("tokens", "create"),
    ("tokens", "list"),
    ("tokens", "revoke"),
    ("reviewers",),
    ("reviewers", "add"),
    ("reviewers", "list"),
    ("reviewers", "rotate"),
    ("reviewers", "disable"),
    ("reviewers", "enable"),
    ("policy",),
    ("policy", "check"),
    ("approvals",),
    ("approvals", "list"),
    ("approvals", "show"),
    ("approvals", "approve"),
    ("approvals", "reject"),
    ("grants",),
    ("grants", "list"),
    ("grants", "revoke"),
}


def test_every_documented_command_exists() -> None:
    assert set(ALL_COMMANDS) >= EXPECTED_COMMANDS


@pytest.mark.parametrize("path", [(), *sorted(ALL_COMMANDS)], ids=lambda p: " ".join(p) or "airlock")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_and_group_has_help(path: tuple[str, ...], flag: str) -> None:
    result = cli(*path, flag)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: airlock {' '.join(path)}".rstrip())
    command = ALL_COMMANDS[path] if path else main
    assert command.help, f"{path} has no help text"
    assert " ".join(command.help.split()[:6]) in " ".join(result.output.split())


@pytest.mark.parametrize("path", sorted(ALL_COMMANDS), ids=" ".join)
def test_every_option_explains_itself(path: tuple[str, ...]) -> None:
    undocumented = [
        option.name
        for option in ALL_COMMANDS[path].params
        if isinstance(option, click.Option) and not option.help and option.name != "help"
    ]
    assert undocumented == []


def test_version_is_printed() -> None:
    result = cli("--version")
    assert result.exit_code == 0 and result.output.startswith("airlock, version ")


# --------------------------------------------------------------------------- policy check


INVALID_POLICY = {
    "version": "1",
    "default": "alow",
    "rules": [{"tool": "x", "action": "allow", "when": {"n": {"gt": "big"}}}],
}


def test_policy_check_says_ok_for_a_valid_policy(tmp_path: Path) -> None:
    policy = tmp_path / "good.json"
    policy.write_text(json.dumps(DEFAULT_POLICY), encoding="utf-8")
    result = cli("policy", "check", str(policy))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{policy}: ok (6 rules, default deny, version ")
    assert result.stderr == ""


def test_policy_check_lists_every_problem_with_its_location_and_exits_1(tmp_path: Path) -> None:
    policy = tmp_path / "bad.json"
    policy.write_text(json.dumps(INVALID_POLICY), encoding="utf-8")
    result = cli("policy", "check", str(policy))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"{policy}: invalid policy"
    assert any(line.startswith("  - default:") for line in lines[1:])
    assert any(line.startswith("  - rules[0].when") for line in lines[1:])
    assert "Traceback" not in result.output and result.stdout == ""


@pytest.mark.parametrize(
    ("content", "location"),
    [
        (b'{"version": "1",\n "default": "deny",,}', "line 2"),
        (b"", ""),
        (None, "cannot read the file"),
    ],
)
def test_policy_check_reports_unparseable_or_missing_files_without_a_traceback(
    tmp_path: Path, content: bytes | None, location: str
) -> None:
    policy = tmp_path / "broken.json"
    if content is not None:
        policy.write_bytes(content)
    result = cli("policy", "check", str(policy))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{policy}: invalid policy\n") and location in result.stderr
    assert "Traceback" not in result.output


def test_policy_check_checks_every_file_and_fails_if_any_is_invalid(tmp_path: Path) -> None:
    good, bad, other = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    good.write_text(json.dumps(DEFAULT_POLICY), encoding="utf-8")
    bad.write_text(json.dumps(INVALID_POLICY), encoding="utf-8")
    other.write_text(json.dumps({"version": "1", "default": "allow"}), encoding="utf-8")
    result = cli("policy", "check", str(good), str(bad), str(other))
    assert result.exit_code == 1
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == [str(good), str(other)]
    assert result.stderr.startswith(f"{bad}: invalid policy")
    assert cli("policy", "check", str(good), str(other)).exit_code == 0


# --------------------------------------------------------------------------- one-line config errors


@pytest.mark.parametrize(
    "command",
    [
        ("serve",),
        ("migrate",),
        ("tokens", "list"),
        ("tokens", "create", "--agent", "a"),
        ("reviewers", "list"),
        ("approvals", "list"),
        ("approvals", "show", "x"),
        ("approvals", "approve", "x"),
        ("audit",),
    ],
    ids=" ".join,
)
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no configuration file at"),
        ("port = \n", "is not valid TOML"),
        ('colour = "blue"\n', "unknown setting 'colour'"),
        ('database_url = "sqlite:///x.db"\n', "must use the async driver"),
        ("[approvals]\nhold_seconds = -1\n", "approvals.hold_seconds must be a positive number"),
        ('[[upstreams]]\nname = "m"\nurl = "tcp://x"\npolicy = "p.json"\n', "url must be an http(s) URL"),
    ],
    ids=["missing", "toml", "unknown-key", "sync-sqlite", "negative-hold", "bad-url"],
)
def test_a_missing_or_broken_config_is_one_line_and_exit_2(
    tmp_path: Path, command: tuple[str, ...], content: str | None, expected: str
) -> None:
    config = tmp_path / "airlock.toml"
    if content is not None:
        upstream = '[[upstreams]]\nname = "m"\nurl = "http://127.0.0.1:9/mcp"\npolicy = "p.json"\n'
        config.write_text(content if "upstreams" in content else content + upstream, encoding="utf-8")
    line = one_line_error(cli(*command, "--config", str(config)))
    assert expected in line


def test_serve_without_upstreams_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "airlock.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n', encoding="utf-8")
    assert "names no upstreams" in one_line_error(cli("serve", "--config", str(config)))


def test_a_config_that_is_not_utf8_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "airlock.toml"
    config.write_bytes("# café\n".encode("latin-1"))
    one_line_error(cli("migrate", "--config", str(config)))


@pytest.mark.parametrize(
    "args",
    [
        ("serve", "--port", "70000"),
        ("serve", "--port", "-1"),
        ("demo", "--port", "65536"),
        ("audit", "--limit", "0"),
        ("audit", "--limit", "-5"),
        ("approvals", "list", "--limit", "0"),
    ],
    ids=" ".join,
)
def test_out_of_range_options_are_usage_errors_before_anything_starts(tmp_path: Path, args: tuple[str, ...]) -> None:
    config = write_config(tmp_path)
    result = cli(*args, "--config", str(config))
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "Invalid value for '--" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "cli.db").exists(), "nothing was migrated or served"


@pytest.mark.parametrize(
    ("content", "problem"), [(None, "cannot read the file"), (INVALID_POLICY, "default")], ids=["missing", "invalid"]
)
def test_serve_with_a_broken_policy_refuses_to_start_without_a_traceback(
    tmp_path: Path, content: Any, problem: str
) -> None:
    policy = tmp_path / "market.json"
    if content is not None:
        policy.write_text(json.dumps(content), encoding="utf-8")
    result = cli("serve", "--config", str(_config_with_policy(tmp_path, policy)))
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stderr.startswith(f"{policy}: invalid policy\n") and problem in result.stderr


def _config_with_policy(tmp_path: Path, policy: Path) -> Path:
    config = tmp_path / "airlock.toml"
    config.write_text(
        f'database_url = "sqlite+aiosqlite:///{tmp_path / "cli.db"}"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[[upstreams]]\nname = "m"\nurl = "http://127.0.0.1:9/mcp"\npolicy = "{policy}"\n',
        encoding="utf-8",
    )
    return config


def test_an_unreachable_database_is_one_line_without_its_password_and_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, "postgresql+asyncpg://airlock:hunter2@127.0.0.1:9/airlock")
    line = one_line_error(cli("migrate", "--config", str(config)))
    assert line.startswith("airlock: cannot migrate the database at postgresql+asyncpg://***@127.0.0.1:9/airlock: ")
    assert "hunter2" not in line


def test_the_config_comes_from_airlock_config_when_no_option_is_given(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = CliRunner().invoke(
        main, ["migrate"], prog_name="airlock", env={**CLEAN_ENV, "AIRLOCK_CONFIG": str(config)}
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"database at sqlite+aiosqlite:///{tmp_path / 'cli.db'} is up to date\n"


# --------------------------------------------------------------------------- tokens and reviewers


def test_tokens_are_created_listed_without_their_secret_and_revoked(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    created = cli("tokens", "create", "--agent", "claude-desktop", "--label", "laptop", "--config", config)
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("alk_agent_") and "\n" not in token
    assert "it is not shown again" in created.stderr
    second = cli("tokens", "create", "--agent", "cursor", "--config", config).stdout.strip()

    listing = cli("tokens", "list", "--config", config)
    assert listing.exit_code == 0
    assert token not in listing.output and second not in listing.output
    rows = listing.stdout.splitlines()[1:]
    assert len(rows) == 2 and "claude-desktop" in rows[0] and "laptop" in rows[0] and token[:14] in rows[0]

    revoked = cli("tokens", "revoke", rows[0].split()[0], "--config", config)
    assert revoked.exit_code == 0 and revoked.stdout.startswith("revoked 1 token(s)")
    assert "claude-desktop" not in cli("tokens", "list", "--config", config).stdout
    everything = cli("tokens", "list", "--all", "--config", config).stdout
    assert "revoked" in everything and "claude-desktop" in everything
    assert "no active token matched" in one_line_error(cli("tokens", "revoke", rows[0].split()[0], "--config", config))
    by_agent = cli("tokens", "revoke", "--agent", "cursor", "--config", config)
    assert by_agent.exit_code == 0 and "revoked 1 token(s)" in by_agent.stdout


@pytest.mark.parametrize("args", [("tokens", "revoke"), ("tokens", "revoke", "1", "--agent", "x")], ids=" ".join)
def test_tokens_revoke_needs_exactly_one_of_an_id_or_an_agent(tmp_path: Path, args: tuple[str, ...]) -> None:
    assert "give a token ID or --agent NAME" in one_line_error(cli(*args, "--config", str(write_config(tmp_path))))


@pytest.mark.parametrize("name", ["", "has space", ".leading-dot", "x" * 65, "semi;colon", "é"])
def test_names_that_are_not_short_identifiers_are_refused_in_one_line(tmp_path: Path, name: str) -> None:
    config = str(write_config(tmp_path))
    assert "must be 1-64 letters" in one_line_error(cli("tokens", "create", "--agent", name, "--config", config))
    assert "must be 1-64 letters" in one_line_error(cli("reviewers", "add", name, "--config", config))


def test_reviewers_are_added_listed_rotated_and_disabled(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    added = cli("reviewers", "add", "alice", "--slack-user", "U123", "--config", config)
    assert added.exit_code == 0, added.output
    assert added.stdout.strip().startswith("alk_rev_")
    listing = cli("reviewers", "list", "--config", config).stdout.splitlines()
    assert listing[1].split()[:3] == ["alice", "U123", listing[1].split()[2]] and listing[1].endswith("active")

    duplicate = one_line_error(cli("reviewers", "add", "alice", "--config", config))
    assert "a reviewer named 'alice'" in duplicate and "already exists" in duplicate
    same_slack_user = one_line_error(cli("reviewers", "add", "bob", "--slack-user", "U123", "--config", config))
    assert "already exists" in same_slack_user

    rotated = cli("reviewers", "rotate", "alice", "--config", config)
    assert rotated.exit_code == 0 and rotated.stdout.strip().startswith("alk_rev_")
    assert rotated.stdout.strip() != added.stdout.strip()
    assert "no reviewer named 'nobody'" in one_line_error(cli("reviewers", "rotate", "nobody", "--config", config))

    disabled = cli("reviewers", "disable", "alice", "--config", config)
    assert disabled.exit_code == 0 and disabled.stdout == "reviewer 'alice' disabled\n"
    assert cli("reviewers", "list", "--config", config).stdout.splitlines()[1].endswith("disabled")
    again = one_line_error(cli("reviewers", "disable", "alice", "--config", config))
    assert "no active reviewer named 'alice'" in again

    assert cli("reviewers", "rotate", "alice", "--config", config).exit_code == 0
    assert cli("reviewers", "list", "--config", config).stdout.splitlines()[1].endswith("disabled"), (
        "a new token does not re-enable a disabled reviewer"
    )
    enabled = cli("reviewers", "enable", "alice", "--config", config)
    assert enabled.exit_code == 0 and cli("reviewers", "list", "--config", config).stdout.splitlines()[1].endswith(
        "active"
    )
    assert "no disabled reviewer named 'alice'" in one_line_error(
        cli("reviewers", "enable", "alice", "--config", config)
    )


async def test_cli_tokens_and_reviewer_rotation_take_effect_at_a_running_gateway(
    airlock: AirlockUnderTest, tmp_path: Path
) -> None:
    config = str(write_config(tmp_path, airlock.settings.database_url))
    token = (await acli("tokens", "create", "--agent", "cli-agent", "--config", config)).stdout.strip()
    old_reviewer = (await acli("reviewers", "add", "carol", "--config", config)).stdout.strip()
    new_reviewer = (await acli("reviewers", "rotate", "carol", "--config", config)).stdout.strip()
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "authorization": f"Bearer {token}",
    }
    async with httpx.AsyncClient(timeout=10) as http:
        accepted = await http.post(airlock.mcp_url, json=initialize, headers=headers)
        await acli("tokens", "revoke", "--agent", "cli-agent", "--config", config)
        refused = await http.post(airlock.mcp_url, json=initialize, headers=headers)
        old = await http.get(f"{airlock.url}/api/approvals", headers={"authorization": f"Bearer {old_reviewer}"})
        new = await http.get(f"{airlock.url}/api/approvals", headers={"authorization": f"Bearer {new_reviewer}"})
    assert accepted.status_code == 200
    assert refused.status_code == 401
    assert (old.status_code, new.status_code) == (401, 200)


# --------------------------------------------------------------------------- approvals


@asynccontextmanager
async def parked_cancel(
    airlock: AirlockUnderTest, market: DemoMarket, agent: str = "agent-1"
) -> AsyncIterator[tuple[asyncio.Task[Any], dict[str, Any]]]:
    """A held `em_cancel_task` call (the default policy parks it) and its pending approval."""
    task = new_task(market)
    async with airlock.client(agent) as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "duplicate"}))
        found: list[dict[str, Any]] = []

        async def parked() -> bool:
            found[:] = await airlock.approvals("pending")
            return bool(found)

        await wait_for(parked, timeout=10)
        try:
            yield call, found[0]
        finally:
            call.cancel()


async def test_approvals_are_listed_shown_and_approved_from_the_cli(
    airlock: AirlockUnderTest, market: DemoMarket, tmp_path: Path
) -> None:
    config = str(write_config(tmp_path, airlock.settings.database_url))
    for reviewer in ("carol", "dave"):
        await airlock.reviewer_token(reviewer)
    async with parked_cancel(airlock, market) as (call, approval):
        listing = await acli("approvals", "list", "--config", config)
        assert listing.exit_code == 0, listing.output
        [header, row] = listing.stdout.splitlines()
        assert header.split()[:4] == ["ID", "STATUS", "AGENT", "TOOL"]
        assert row.split()[:4] == [approval["id"], "pending", "agent-1", "em_cancel_task"]
        as_json = json.loads((await acli("approvals", "list", "--json", "--config", config)).stdout)
        assert [a["id"] for a in as_json] == [approval["id"]]
        assert as_json[0]["arguments"] == approval["arguments"]
        assert (await acli("approvals", "list", "--status", "approved", "--config", config)).stdout == (
            "no approvals with status approved\n"
        )
        assert (await acli("approvals", "list", "--tool", "em_get_task", "--config", config)).stdout == (
            "no approvals with status pending\n"
        )

        shown = json.loads((await acli("approvals", "show", approval["id"], "--json", "--config", config)).stdout)
        assert shown["status"] == "pending" and shown["policy"]["reason"] == "cancelling is irreversible"
        assert [step["event"] for step in shown["timeline"]][:1] == ["parked"]

        approved = await acli("approvals", "approve", approval["id"], "--as", "carol", "--config", config)
        assert approved.exit_code == 0, approved.output
        assert approved.stdout == f"{approval['id']} approved by carol: agent-1 -> em_cancel_task\n"
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error and market.calls["em_cancel_task"] == 1

    again = one_line_error(await acli("approvals", "reject", approval["id"], "--as", "dave", "--config", config))
    assert f"approval {approval['id']} was already approved by carol" in again
    finished = json.loads((await acli("approvals", "show", approval["id"], "--json", "--config", config)).stdout)
    assert finished["decided_by"] == "carol" and finished["decided_via"] == "cli"
    assert {"parked", "decided", "executing", "executed"} <= {step["event"] for step in finished["timeline"]}
    text = (await acli("approvals", "show", approval["id"], "--config", config)).stdout
    assert text.startswith(f"{approval['id']}: em_cancel_task on execution-market, asked by agent-1\n")
    assert "  status    completed (ran and succeeded)\n" in text
    assert "Approved by carol via the CLI" in text and "Z" in text.split("asked     ", 1)[1][:21]
    assert "What the agent sent:\n  {\n" in text and '"status": "cancelled"' in text.split("Result:", 1)[1]
    assert "Timeline:" in text and "parked" in text


async def test_a_rejection_from_the_cli_reaches_the_agent_with_its_reason(
    airlock: AirlockUnderTest, market: DemoMarket, tmp_path: Path
) -> None:
    config = str(write_config(tmp_path, airlock.settings.database_url))
    await airlock.reviewer_token("carol")
    async with parked_cancel(airlock, market) as (call, approval):
        rejected = await acli(
            "approvals", "reject", approval["id"], "--as", "carol", "--reason", "still needed", "--config", config
        )
        assert rejected.exit_code == 0, rejected.output
        async with asyncio.timeout(10):
            result = await call
    text = result.content[0].text
    assert result.is_error and "still needed" in text and "carol" in text
    assert market.calls["em_cancel_task"] == 0


async def test_approval_commands_refuse_unknown_ids_and_self_approval_in_one_line(
    airlock: AirlockUnderTest, market: DemoMarket, tmp_path: Path
) -> None:
    config = str(write_config(tmp_path, airlock.settings.database_url))
    await airlock.reviewer_token("erin")
    async with parked_cancel(airlock, market, agent="erin") as (_, approval):
        unknown = one_line_error(await acli("approvals", "show", "nope", "--config", config))
        assert unknown == "airlock: no approval nope"
        assert "no approval nope" in one_line_error(
            await acli("approvals", "approve", "nope", "--as", "erin", "--config", config)
        )
        own = one_line_error(await acli("approvals", "approve", approval["id"], "--as", "erin", "--config", config))
        assert "erin made this call and cannot approve it" in own
    assert market.calls["em_cancel_task"] == 0


# --------------------------------------------------------------------------- audit


async def test_audit_since_15m_as_json_lines(airlock: AirlockUnderTest, market: DemoMarket, tmp_path: Path) -> None:
    config = str(write_config(tmp_path, airlock.settings.database_url))
    task = new_task(market)
    async with airlock.client() as client:
        await client.call_tool("em_get_task", {"task_id": task.id})
        await client.call_tool("em_wipe_everything", {})
    await airlock.runtime.audit.flush()
    result = await acli("audit", "--since", "15m", "--json", "--config", config)
    assert result.exit_code == 0, result.output
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["tool"], e["decision"]) for e in entries] == [("em_wipe_everything", "deny"), ("em_get_task", "allow")]
    assert set(entries[0]) >= {
        "at",
        "event",
        "agent",
        "upstream",
        "tool",
        "decision",
        "rule",
        "policy_version",
        "latency_ms",
        "outcome",
        "argument_keys",
        "args_hash",
        "arguments",
    }
    header, *table = (await acli("audit", "--since", "15m", "--config", config)).stdout.splitlines()
    assert header.split()[:3] == ["TIME", "EVENT", "DECISION"]
    assert len(table) == 2 and "em_wipe_everything" in table[0] and "deny" in table[0]
    assert (await acli("audit", "--since", "2030-01-01T00:00:00", "--config", config)).stdout == ""


@pytest.mark.parametrize("since", ["15x", "yesterday", "m", ""])
def test_audit_since_that_is_neither_a_duration_nor_a_time_is_one_line(tmp_path: Path, since: str) -> None:
    line = one_line_error(cli("audit", "--since", since, "--config", str(write_config(tmp_path))))
    assert "is neither an ISO time nor a duration like 15m" in line


# --------------------------------------------------------------------------- what reviewers read, and who decides


async def test_approvals_and_audit_show_hidden_characters_in_tool_names_and_arguments_as_escapes(
    airlock: AirlockUnderTest, market: DemoMarket, tmp_path: Path
) -> None:
    """Issue 10, class 6: the CLI reveals bidi and zero-width characters (tables and JSON alike)."""
    config = str(write_config(tmp_path, airlock.settings.database_url))
    airlock.set_policy(trojan.POLICY)
    await airlock.reviewer_token("carol")
    async with airlock.client() as client:
        call = asyncio.create_task(client.call_tool(trojan.TOOL, trojan.ARGUMENTS))
        try:
            approval = await airlock.wait_pending()
            listing = (await acli("approvals", "list", "--config", config)).stdout
            shown = (await acli("approvals", "show", approval["id"], "--config", config)).stdout
            shown_json = (await acli("approvals", "show", approval["id"], "--json", "--config", config)).stdout
            decided = await acli(
                "approvals", "reject", approval["id"], "--as", "carol", "--reason", "no", "--config", config
            )
        finally:
            call.cancel()
    await airlock.runtime.audit.flush()
    table = (await acli("audit", "--approval", approval["id"], "--config", config)).stdout
    for output in (listing, shown, shown_json, decided.stdout, table):
        assert trojan.revealed(output), output
    assert "em_cancel\\u202e_task\\u200b" in listing and "em_cancel\\u202e_task\\u200b" in table
    assert json.loads(shown_json)["arguments"] == trojan.ARGUMENTS, "the JSON still reads as the exact arguments"


async def test_the_cli_decides_as_the_only_enabled_reviewer_and_the_audit_says_via_cli(
    airlock: AirlockUnderTest, market: DemoMarket, tmp_path: Path
) -> None:
    """Issue 10, class 4: as after `make demo`, `airlock approvals approve ID` needs no --as."""
    config = str(write_config(tmp_path, airlock.settings.database_url))
    await airlock.reviewer_token("demo-reviewer")
    async with parked_cancel(airlock, market) as (call, approval):
        async with airlock.runtime.db.write() as conn:  # `airlock.approvals()` added an observer reviewer
            await token_store.disable_reviewer(conn, name="observer", now=time.time())
        approved = await acli("approvals", "approve", approval["id"], "--config", config)
        assert approved.exit_code == 0, approved.output
        async with asyncio.timeout(10):
            await call
    assert approved.stdout == f"{approval['id']} approved by demo-reviewer: agent-1 -> em_cancel_task\n"
    await airlock.runtime.audit.flush()
    audit = await acli("audit", "--approval", approval["id"], "--event", "decided", "--config", config)
    [_header, line] = audit.stdout.splitlines()
    assert "by demo-reviewer" in line and "(via cli)" in line


@pytest.mark.parametrize(
    ("verdict", "store_arguments"), [("approve", False), ("reject", False), ("approve", True), ("reject", True)]
)
async def test_a_cli_decision_stores_argument_values_in_the_audit_log_only_when_audit_store_arguments_is_set(
    airlock: AirlockUnderTest, market: DemoMarket, tmp_path: Path, verdict: str, store_arguments: bool
) -> None:
    """Issue 11, item 4: the CLI builds its parts with the composition root `serve` uses, so
    `[audit] store_arguments` governs the audit entry of a decision made from the CLI too."""
    config = write_config(tmp_path, airlock.settings.database_url)
    with config.open("a", encoding="utf-8") as toml:
        toml.write(f"[audit]\nstore_arguments = {str(store_arguments).lower()}\n")
    await airlock.reviewer_token("carol")
    async with parked_cancel(airlock, market) as (_call, approval):
        decided = await acli(
            "approvals", verdict, approval["id"], "--as", "carol", "--reason", "r", "--config", str(config)
        )
        assert decided.exit_code == 0, decided.output
    async with airlock.runtime.db.read() as conn:
        [entry] = await audit_store.search(conn, event="decided", approval_id=approval["id"])
    assert entry.actor == "carol" and entry.args_hash == approval["args_sha256"]
    assert entry.arguments == (canonical_json(approval["arguments"]) if store_arguments else None)


async def test_the_cli_refuses_names_no_enabled_reviewer_holds_and_asks_for_as_among_several(
    airlock: AirlockUnderTest, market: DemoMarket, tmp_path: Path
) -> None:
    """Issue 10, class 4: never a name no one holds, never a disabled reviewer, one line each."""
    config = str(write_config(tmp_path, airlock.settings.database_url))
    for name in ("carol", "dave"):
        await airlock.reviewer_token(name)
    async with parked_cancel(airlock, market) as (_call, approval):
        async with airlock.runtime.db.write() as conn:
            await token_store.disable_reviewer(conn, name="dave", now=time.time())
        several = one_line_error(await acli("approvals", "approve", approval["id"], "--config", config))
        nobody = one_line_error(
            await acli("approvals", "approve", approval["id"], "--as", "root@cli", "--config", config)
        )
        disabled = one_line_error(
            await acli("approvals", "approve", approval["id"], "--as", "dave", "--config", config)
        )
        no_reason = one_line_error(
            await acli("approvals", "reject", approval["id"], "--as", "carol", "--config", config)
        )
        current = await airlock.approval(approval["id"])
    assert "say which reviewer decides with --as NAME" in several and "carol" in several
    assert "root@cli is not an Airlock reviewer" in nobody
    assert "reviewer dave is disabled and cannot decide" in disabled
    assert "a rejection needs a reason" in no_reason
    assert current["status"] == "pending" and market.calls["em_cancel_task"] == 0


def test_a_name_that_is_an_existing_identity_spelled_differently_is_refused_at_creation(tmp_path: Path) -> None:
    """Issue 10, class 4: `RT-Agent` is `rt-agent`; one identity has one spelling."""
    config = str(write_config(tmp_path))
    assert cli("tokens", "create", "--agent", "rt-agent", "--config", config).exit_code == 0
    assert cli("tokens", "create", "--agent", "rt-agent", "--config", config).exit_code == 0, "same spelling: fine"
    agent = one_line_error(cli("tokens", "create", "--agent", "RT-Agent", "--config", config))
    reviewer = one_line_error(cli("reviewers", "add", "RT-AGENT", "--config", config))
    for line in (agent, reviewer):
        assert "is the same identity as the existing name 'rt-agent'" in line and "use that spelling" in line
    assert cli("reviewers", "add", "rt-agent", "--config", config).exit_code == 0, "an agent's exact name may review"
