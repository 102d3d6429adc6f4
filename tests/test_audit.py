"""The audit log: one entry per `tools/call` decision and per approval step, and `airlock audit` to read it.

Provenance: Airlock-defined (issue: gateway core: time, agent, upstream, tool, decision, matching
rule, policy version, latency and upstream outcome; argument keys and the SHA-256 of their canonical
JSON by default, values only with `[audit] store_arguments = true`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from click.testing import CliRunner
from mcp.shared.exceptions import MCPError

from app.audit import AuditLog
from app.cli import main
from app.demo.upstream import DemoMarket, build_app
from app.jsonrpc import arguments_hash, canonical_json
from app.protocol import HEADER_MISMATCH
from app.store import audit as audit_store
from app.store.audit import AuditRow
from tests.conftest import StartAirlock
from tests.harness import (
    SECRET_KEY,
    UPSTREAM,
    AirlockUnderTest,
    copy_database,
    new_task,
    running_airlock,
    settings_for_test,
)
from tests.net import free_port, serve, wait_for
from tests.rawmcp import modern_envelope, modern_headers

PUBLISH = {"title": "t", "description": "d", "bounty_usd": 5}


async def entries(airlock: AirlockUnderTest, **filters: Any) -> list[AuditRow]:
    """Everything audited so far, oldest first (call entries are written in batches: flush first)."""
    await airlock.runtime.audit.flush()
    async with airlock.runtime.db.read() as conn:
        return await audit_store.search(conn, newest_first=False, limit=1000, **filters)


def policy_version(airlock: AirlockUnderTest) -> str:
    return airlock.runtime.policies.current(UPSTREAM).version


def summary(row: AuditRow) -> tuple[Any, ...]:
    return row.event, row.agent, row.upstream, row.tool, row.decision, row.rule, row.outcome


async def test_an_allowed_call_is_audited_with_rule_policy_version_latency_and_outcome(
    airlock: AirlockUnderTest, market: DemoMarket, mode: str
) -> None:
    task = new_task(market)
    before = time.time()
    async with airlock.client("reader", mode=mode) as client:
        await client.call_tool("em_get_task", {"task_id": task.id})
        await client.call_tool("em_get_task", {"task_id": "no-such-task"})
    [found, missing] = await entries(airlock, event="call")
    assert summary(found) == ("call", "reader", UPSTREAM, "em_get_task", "allow", "read", "ok")
    assert found.policy_version == policy_version(airlock) and found.policy_version.startswith("sha256:")
    assert found.latency_ms is not None and 0 < found.latency_ms < 10_000
    assert before <= found.at <= time.time()
    assert (found.approval_id, found.actor) == (None, None)
    assert summary(missing)[-1] == "tool error"


async def test_refusals_are_audited_as_deny_hidden_and_rate_limited_with_their_rule(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with airlock.client("intern-bot") as intern:
        await intern.call_tool("em_publish_task", PUBLISH)
        await intern.call_tool("em_rate_worker", {"task_id": "x"})
        await intern.call_tool("em_wipe_everything", {})
    async with airlock.client("writer-bot") as writer:
        for _ in range(4):
            await writer.call_tool("em_publish_task", PUBLISH)
    rows = await entries(airlock, event="call")
    assert [summary(row)[1:] for row in rows] == [
        ("intern-bot", UPSTREAM, "em_publish_task", "deny", "interns-cannot-publish", "refused"),
        ("intern-bot", UPSTREAM, "em_rate_worker", "hidden", "hide[0]", "refused"),
        ("intern-bot", UPSTREAM, "em_wipe_everything", "deny", "default", "refused"),
        *[("writer-bot", UPSTREAM, "em_publish_task", "allow", "publish", "ok")] * 3,
        ("writer-bot", UPSTREAM, "em_publish_task", "rate_limited", "publish", "refused"),
    ]
    assert all(row.policy_version == policy_version(airlock) and row.latency_ms is not None for row in rows)
    assert market.calls == {"em_publish_task": 3}


async def test_by_default_only_argument_keys_and_their_hash_are_stored(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    secret = {"title": "secret title", "description": "password=hunter2", "bounty_usd": 5}
    async with airlock.client("writer-bot") as client:
        await client.call_tool("em_publish_task", secret)
        await client.call_tool("em_wipe_everything", {"token": "hunter2"})
    rows = await entries(airlock)
    assert [(json.loads(r.argument_keys or "null"), r.args_hash, r.arguments) for r in rows] == [
        (["bounty_usd", "description", "title"], arguments_hash(secret), None),
        (["token"], arguments_hash({"token": "hunter2"}), None),
    ]
    async with airlock.runtime.db.read() as conn:
        everything = json.dumps([r.__repr__() for r in await audit_store.search(conn, limit=1000)])
    assert "hunter2" not in everything and "secret title" not in everything


async def test_argument_values_are_stored_only_when_configured(start_airlock: StartAirlock, market: DemoMarket) -> None:
    airlock = await start_airlock(audit={"store_arguments": True})
    arguments = {"title": "t", "description": "é 😀", "bounty_usd": 5}
    async with airlock.client("writer-bot") as client:
        await client.call_tool("em_publish_task", arguments)
    [row] = await entries(airlock)
    assert row.arguments == canonical_json(arguments)
    assert row.args_hash == arguments_hash(arguments)


async def test_the_hash_binds_the_arguments_however_they_were_spelled(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    task = new_task(market)
    spellings = [
        f'{{"task_id":"{task.id}","extra":[1,{{"b":2,"a":1}}]}}',
        f'{{ "extra" : [ 1 , {{ "a" : 1 , "b" : 2 }} ] , "task_id" : "{task.id}" }}',
        '{{"extra":[1,{{"a":1,"b":2}}],"task_id":"{}"}}'.format("".join(f"\\u{ord(c):04x}" for c in task.id)),
    ]
    token = await airlock.agent_token()
    headers = modern_headers(token, "tools/call", "em_get_task")
    meta = json.dumps(modern_envelope())
    async with httpx.AsyncClient(timeout=10) as http:
        for index, arguments in enumerate(spellings):
            raw = (
                f'{{"jsonrpc":"2.0","id":{index},"method":"tools/call","params":{{"name":"em_get_task",'
                f'"arguments":{arguments},"_meta":{meta}}}}}'
            )
            response = await http.post(airlock.mcp_url, content=raw.encode(), headers=headers)
            assert response.status_code == 200, response.text
    rows = await entries(airlock)
    assert {row.args_hash for row in rows} == {arguments_hash({"task_id": task.id, "extra": [1, {"a": 1, "b": 2}]})}


async def test_an_approved_call_is_audited_at_every_step_under_its_approval_id(
    airlock: AirlockUnderTest, market: DemoMarket, mode: str
) -> None:
    task = new_task(market)
    arguments = {"task_id": task.id, "reason": "duplicate"}
    async with airlock.client("agent-1", mode=mode) as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", arguments))
        await wait_for(lambda: _pending(airlock), timeout=10)
        [approval] = await airlock.approvals("pending")
        await airlock.decide(approval["id"], "approve", reviewer="alice")
        async with asyncio.timeout(10):
            await call

    async def delivered() -> bool:
        return any(row.event == "delivered" for row in await entries(airlock))

    await wait_for(delivered, timeout=10)
    rows = await entries(airlock)
    assert all(row.approval_id == approval["id"] for row in rows)
    [parked_call] = [row for row in rows if row.event == "call"]
    assert summary(parked_call) == ("call", "agent-1", UPSTREAM, "em_cancel_task", "approve", "cancel", "parked")
    assert parked_call.policy_version == policy_version(airlock) and parked_call.latency_ms is not None
    steps = [row for row in rows if row.event != "call"]
    events = [row.event for row in steps]
    assert events[0] == "parked" and events[-1] == "delivered"
    assert [e for e in events if e in {"parked", "decided", "executing", "executed", "delivered"}] == [
        "parked",
        "decided",
        "executing",
        "executed",
        "delivered",
    ]
    by_event = {row.event: row for row in steps}
    assert (by_event["parked"].actor, by_event["parked"].detail) == ("agent-1", "cancelling is irreversible")
    assert (by_event["decided"].actor, by_event["decided"].outcome) == ("alice", "approved")
    assert by_event["executed"].detail == "completed"
    assert all(
        row.decision == "approve"
        and row.rule == "cancel"
        and row.tool == "em_cancel_task"
        and row.args_hash == arguments_hash(arguments)
        and row.arguments is None
        for row in steps
    )


async def test_rejected_and_withdrawn_approvals_are_audited(airlock: AirlockUnderTest, market: DemoMarket) -> None:
    task = new_task(market)
    async with airlock.client("agent-1") as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        await wait_for(lambda: _pending(airlock), timeout=10)
        [approval] = await airlock.approvals("pending")
        await airlock.decide(approval["id"], "reject", reviewer="bob", reason="keep it")
        async with asyncio.timeout(10):
            await call
    [decided] = await entries(airlock, event="decided")
    assert (decided.approval_id, decided.actor, decided.outcome) == (approval["id"], "bob", "rejected")
    assert decided.detail == "via api: keep it"


async def test_a_call_to_an_unreachable_upstream_is_audited_as_allowed_and_unreachable(
    tmp_path: Path, database_url: str
) -> None:
    settings = settings_for_test(tmp_path, f"http://127.0.0.1:{free_port()}/mcp", database_url)
    async with running_airlock(settings) as dead:
        token = await dead.agent_token()
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "em_get_task", "arguments": {"task_id": "t"}, "_meta": modern_envelope()},
        }
        headers = modern_headers(token, "tools/call", "em_get_task")
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(dead.mcp_url, json=body, headers=headers)
        rows = await entries(dead, event="call")
    assert response.json()["result"]["isError"] is True
    assert "unreachable" in response.json()["result"]["content"][0]["text"]
    assert [summary(row)[4:] for row in rows] == [("allow", "read", "upstream unreachable")]


@pytest.mark.parametrize(
    "params",
    [{"arguments": {"task_id": "t"}}, {"name": "em_get_task", "arguments": [1]}],
    ids=["no name", "arguments a list"],
)
async def test_an_invalid_tools_call_is_audited_as_invalid(airlock: AirlockUnderTest, params: dict[str, Any]) -> None:
    token = await airlock.agent_token()
    headers = modern_headers(token, "tools/call", params.get("name"))
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {**params, "_meta": modern_envelope()}}
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(airlock.mcp_url, json=body, headers=headers)
    assert response.status_code == 400
    [row] = await entries(airlock)
    assert (row.event, row.agent, row.tool, row.decision, row.rule) == (
        "call",
        "agent-1",
        params.get("name", ""),
        "invalid",
        None,
    )
    assert row.outcome is not None and row.outcome.startswith("Invalid params")


@pytest.mark.parametrize(
    "header",
    [{"mcp-name": "em_get_task"}, {"mcp-name": "em_cancel_task", "mcp-method": "tools/list"}],
    ids=["name mismatch", "method mismatch"],
)
async def test_a_tools_call_refused_by_the_2026_header_checks_is_audited_as_invalid(
    airlock: AirlockUnderTest, header: dict[str, str]
) -> None:
    """The header checks come before the policy; a refusal there is still a call someone tried."""
    token = await airlock.agent_token()
    headers = {**modern_headers(token, "tools/call"), **header}
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "em_cancel_task", "arguments": {"task_id": "t"}, "_meta": modern_envelope()},
    }
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(airlock.mcp_url, json=body, headers=headers)
    assert response.status_code == 400 and response.json()["error"]["code"] == HEADER_MISMATCH
    [row] = await entries(airlock)
    assert (row.event, row.agent, row.tool, row.decision) == ("call", "agent-1", "em_cancel_task", "invalid")
    assert row.outcome is not None and "header" in row.outcome.lower()


async def test_an_oversized_tool_name_is_audited_and_does_not_block_later_entries(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    """The tool name is the agent's to choose; an audit entry must never fail on it (PostgreSQL
    enforces the column's length, and a batch that cannot be written would be retried forever)."""
    task = new_task(market)
    async with airlock.client() as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("x" * 5000, {})
        await client.call_tool("em_get_task", {"task_id": task.id})
    assert refused.value.error.code == -32602 and "at most 256 characters" in refused.value.error.message
    rows = await entries(airlock)
    assert [(row.tool, row.decision) for row in rows] == [("x" * 256, "invalid"), ("em_get_task", "allow")]


class BlockingDatabase:
    """Stands in for `Database`: each write transaction waits until the test releases it."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.committed: list[dict[str, Any]] = []

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Any]:
        rows: list[dict[str, Any]] = []

        class Connection:
            async def execute(self, statement: Any, entries: list[dict[str, Any]]) -> None:
                rows.extend(entries)

        self.entered.set()
        await self.release.wait()
        yield Connection()
        self.committed.extend(rows)


async def test_flush_returns_only_after_a_batch_the_background_writer_took_is_committed() -> None:
    """Regression: `flush()` found the queue empty while the writer's batch was still in flight,
    so "flush, then read" could miss entries recorded before the flush."""
    db = BlockingDatabase()
    log = AuditLog(db)  # type: ignore[arg-type]
    log.record_call(
        agent="a",
        upstream="u",
        tool="t",
        decision="allow",
        rule="r",
        policy_version="v",
        latency_ms=1.0,
        outcome="ok",
        arguments={},
    )
    background = asyncio.create_task(log.flush())  # what `run()` does every 200 ms
    await db.entered.wait()
    flushed = asyncio.create_task(log.flush())
    for _ in range(20):  # let every ready task run: a flush that does not wait would finish here
        await asyncio.sleep(0)
    assert not flushed.done() and db.committed == []
    db.release.set()
    async with asyncio.timeout(5):
        await flushed
    assert [entry["tool"] for entry in db.committed] == ["t"]
    await background


async def _pending(airlock: AirlockUnderTest) -> bool:
    return bool(await airlock.approvals("pending"))


# --------------------------------------------------------------------------- airlock audit


def audit_cli(config: Path, *args: str) -> list[str]:
    env = {"AIRLOCK_SECRET_KEY": SECRET_KEY, "DATABASE_URL": None, "AIRLOCK_DATABASE_URL": None, "AIRLOCK_CONFIG": None}
    result = CliRunner().invoke(main, ["audit", "--config", str(config), *args], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def audited(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> AsyncIterator[Path]:
    """A config file pointing the CLI at the (SQLite) database of an Airlock that audited a few calls."""
    tmp_path = tmp_path_factory.mktemp("audit-cli")
    market = DemoMarket(examples=False)
    task = new_task(market)
    async with serve(build_app(market)) as upstream:
        database_url = copy_database(sqlite_template, tmp_path / "airlock.db")
        async with running_airlock(settings_for_test(tmp_path, f"{upstream}/mcp", database_url)) as airlock:
            async with airlock.client("reader") as client:
                await client.call_tool("em_get_task", {"task_id": task.id})
                await client.call_tool("em_list_tasks", {})
            async with airlock.client("intern-bot") as client:
                await client.call_tool("em_publish_task", PUBLISH)
            await airlock.runtime.audit.flush()
    config = tmp_path / "cli.toml"
    config.write_text(f'database_url = "{database_url}"\ndata_dir = "{tmp_path / "cli-data"}"\n', encoding="utf-8")
    yield config


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            (),
            [
                ("intern-bot", "em_publish_task", "deny"),
                ("reader", "em_list_tasks", "allow"),
                ("reader", "em_get_task", "allow"),
            ],
        ),
        (("--decision", "deny"), [("intern-bot", "em_publish_task", "deny")]),
        (("--agent", "reader"), [("reader", "em_list_tasks", "allow"), ("reader", "em_get_task", "allow")]),
        (("--tool", "em_get_task"), [("reader", "em_get_task", "allow")]),
        (("--upstream", "other"), []),
        (("--event", "parked"), []),
        (("--limit", "1"), [("intern-bot", "em_publish_task", "deny")]),
        (
            ("--since", "15m"),
            [
                ("intern-bot", "em_publish_task", "deny"),
                ("reader", "em_list_tasks", "allow"),
                ("reader", "em_get_task", "allow"),
            ],
        ),
        (("--since", "2099-01-01T00:00:00+00:00"), []),
    ],
)
async def test_airlock_audit_lists_and_filters_entries_newest_first(
    audited: Path, args: tuple[str, ...], expected: list[tuple[str, str, str]]
) -> None:
    lines = await asyncio.to_thread(audit_cli, audited, "--json", *args)
    found = [json.loads(line) for line in lines]
    assert [(e["agent"], e["tool"], e["decision"]) for e in found] == expected
    header, *table = await asyncio.to_thread(audit_cli, audited, *args) or ["(no header)"]
    assert header.split()[:3] == ["TIME", "EVENT", "DECISION"] if expected else header == "(no header)"
    assert len(table) == len(expected)
    for line, (agent, tool, decision) in zip(table, expected, strict=True):
        assert agent in line and tool in line and decision in line


@pytest.mark.asyncio(loop_scope="module")
async def test_airlock_audit_json_lines_carry_every_column(audited: Path) -> None:
    [line] = await asyncio.to_thread(audit_cli, audited, "--json", "--decision", "deny")
    entry = json.loads(line)
    assert entry["event"] == "call" and entry["rule"] == "interns-cannot-publish" and entry["outcome"] == "refused"
    assert json.loads(entry["argument_keys"]) == sorted(PUBLISH)
    assert entry["args_hash"] == arguments_hash(PUBLISH) and entry["arguments"] is None
    assert entry["policy_version"].startswith("sha256:") and entry["latency_ms"] > 0
    assert set(entry) == set(AuditRow.__slots__)


async def test_airlock_audit_shows_one_approvals_timeline(
    airlock: AirlockUnderTest, market: DemoMarket, tmp_path: Path
) -> None:
    task = new_task(market)
    async with airlock.client("agent-1") as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        await wait_for(lambda: _pending(airlock), timeout=10)
        [approval] = await airlock.approvals("pending")
        await airlock.decide(approval["id"], "reject", reviewer="bob", reason="keep it")
        async with asyncio.timeout(10):
            await call
    await airlock.runtime.audit.flush()
    config = tmp_path / "cli.toml"
    config.write_text(
        f'database_url = "{airlock.settings.database_url}"\ndata_dir = "{tmp_path / "d"}"\n', encoding="utf-8"
    )
    lines = await asyncio.to_thread(audit_cli, config, "--approval", approval["id"], "--json")
    events = [json.loads(line)["event"] for line in lines]
    assert {"call", "parked", "decided"} <= set(events)
    assert all(json.loads(line)["approval_id"] == approval["id"] for line in lines)
    _header, *table = await asyncio.to_thread(audit_cli, config, "--approval", approval["id"], "--event", "decided")
    assert len(table) == 1 and "by bob" in table[0] and approval["id"] in table[0]
