"""Scoped grants end to end: a reviewer approves a held official-SDK call with a grant, and the
same agent's covered calls then run at once, once per call, audited with the grant's id; every
call the grant does not cover (other arguments, another agent, another tool, after revocation) is
parked as usual.

Provenance: Airlock-defined (issue 18, item 4). Airlock under uvicorn in front of the demo
upstream, which counts every execution, on SQLite (PostgreSQL under
`AIRLOCK_TEST_DATABASE=postgres`); decided through the API and the CLI.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client

from app.approvals.outcomes import APPROVAL_META_KEY
from app.approvals.service import Grant
from app.demo.upstream import DemoMarket
from tests.conftest import StartAirlock
from tests.harness import DEFAULT_POLICY, AirlockUnderTest
from tests.test_audit import entries
from tests.test_cli import acli, one_line_error, write_config

LARGE = {"title": "Survey the park", "description": "photos of every bench", "bounty_usd": 150}
"""A call the `large-bounty` rule holds for a reviewer."""


def granting_policy(*scopes: str, max_minutes: int = 60) -> dict[str, Any]:
    """The default policy, with the large-bounty rule offering grants of `scopes`."""
    policy = copy.deepcopy(DEFAULT_POLICY)
    rule = next(r for r in policy["rules"] if r["id"] == "large-bounty")
    rule["grants"] = {"max_minutes": max_minutes, "scope": list(scopes or ("identical",))}
    return policy


def other(**changes: Any) -> dict[str, Any]:
    return {**LARGE, **changes}


async def approve_held(
    airlock: AirlockUnderTest, client: Client, arguments: dict[str, Any], **grant: Any
) -> dict[str, Any]:
    """Call, wait until it is parked, approve it through the API with `grant`; return the answer."""
    call = asyncio.create_task(client.call_tool("em_publish_task", arguments))
    approval = await airlock.wait_pending()
    async with airlock.api(await airlock.reviewer_token("alice")) as api:
        decided = await api.post(f"/api/approvals/{approval['id']}/approve", json=grant)
    assert decided.status_code == 200, decided.text
    async with asyncio.timeout(10):
        assert not (await call).is_error
    answer: dict[str, Any] = decided.json()
    return answer


async def parked_then_rejected(
    airlock: AirlockUnderTest, client: Client, tool: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    """Call, check that it is parked (and return its approval), then reject it so the call ends."""
    call = asyncio.create_task(client.call_tool(tool, arguments))
    approval = await airlock.wait_pending()
    rejected = await airlock.decide(approval["id"], "reject", reviewer="bob", reason="not covered")
    assert rejected.status_code == 200
    async with asyncio.timeout(10):
        assert (await call).is_error
    return approval


async def test_approved_with_a_grant_the_same_agents_identical_calls_run_at_once_each_once_audited_with_the_grant(
    start_airlock: StartAirlock, market: DemoMarket, mode: str
) -> None:
    airlock = await start_airlock(policy=granting_policy())
    async with airlock.client(mode=mode) as client:
        decided = await approve_held(airlock, client, LARGE, grant_minutes=30, grant_scope="identical")
        async with asyncio.timeout(10):
            again = await asyncio.gather(*(client.call_tool("em_publish_task", LARGE) for _ in range(3)))
    grant = decided["grant"]
    assert grant["scope"] == "identical" and grant["agent"] == "agent-1" and grant["created_by"] == "alice"
    assert grant["approval_id"] == decided["id"] and grant["args_sha256"] == decided["args_sha256"]
    assert not any(result.is_error for result in again)
    assert market.calls["em_publish_task"] == 4
    assert await airlock.approvals("pending") == []
    granted = [e for e in await entries(airlock, event="call") if e.detail and grant["id"] in e.detail]
    assert len(granted) == 3
    assert {(e.decision, e.approval_id, e.outcome, e.agent) for e in granted} == {
        ("allow", decided["id"], "ok", "agent-1")
    }
    assert granted[0].detail == f"allowed by grant {grant['id']} (given by alice with approval {decided['id']})"
    timeline = (await airlock.approval(decided["id"]))["timeline"]
    assert [step["detail"] for step in timeline if step["event"] == "granted"] == [
        f"with grant {grant['id']}: identical calls for 30 min"
    ]


async def test_other_arguments_another_agent_and_another_tool_are_parked_as_usual(
    start_airlock: StartAirlock, market: DemoMarket
) -> None:
    airlock = await start_airlock(policy=granting_policy())
    async with airlock.client() as client:
        await approve_held(airlock, client, LARGE, grant_minutes=30)
        different = await parked_then_rejected(airlock, client, "em_publish_task", other(bounty_usd=151))
        cancel = {"task_id": "t-1", "reason": "duplicate"}
        another_tool = await parked_then_rejected(airlock, client, "em_cancel_task", cancel)
    async with airlock.client("agent-2") as hostile:
        another_agent = await parked_then_rejected(airlock, hostile, "em_publish_task", LARGE)
    assert different["arguments"]["bounty_usd"] == 151
    assert another_tool["tool"] == "em_cancel_task"
    assert another_agent["agent"] == "agent-2" and another_agent["arguments"] == LARGE
    assert market.calls["em_publish_task"] == 1 and market.calls.get("em_cancel_task", 0) == 0


async def test_a_tool_grant_covers_other_arguments_of_the_tool_from_that_agent_only(
    start_airlock: StartAirlock, market: DemoMarket
) -> None:
    airlock = await start_airlock(policy=granting_policy("identical", "tool"))
    async with airlock.client() as client:
        decided = await approve_held(airlock, client, LARGE, grant_minutes=15, grant_scope="tool")
        async with asyncio.timeout(10):
            result = await client.call_tool("em_publish_task", other(bounty_usd=999))
    async with airlock.client("agent-2") as hostile:
        await parked_then_rejected(airlock, hostile, "em_publish_task", other(bounty_usd=999))
    assert decided["grant"]["scope"] == "tool" and decided["grant"]["args_sha256"] is None
    assert not result.is_error and market.calls["em_publish_task"] == 2


async def test_after_revocation_a_covered_call_is_parked_again_and_a_replayed_revoke_changes_nothing(
    start_airlock: StartAirlock, market: DemoMarket
) -> None:
    airlock = await start_airlock(policy=granting_policy("identical", "tool"))
    async with airlock.client() as client:
        grant = (await approve_held(airlock, client, LARGE, grant_minutes=30, grant_scope="tool"))["grant"]
        async with airlock.api(await airlock.reviewer_token("bob")) as api:
            listed = (await api.get("/api/grants")).json()["grants"]
            revoked = await api.post(f"/api/grants/{grant['id']}/revoke")
            replayed = await api.post(f"/api/grants/{grant['id']}/revoke")
        async with airlock.api(await airlock.agent_token("agent-1")) as as_agent:
            by_agent = await as_agent.post(f"/api/grants/{grant['id']}/revoke")
        await parked_then_rejected(airlock, client, "em_publish_task", other(title="After the revoke"))
        async with asyncio.timeout(10):
            # Without a grant, the identical call soon after gets the delivered outcome again: no run.
            replay = await client.call_tool("em_publish_task", LARGE)
    assert [g["id"] for g in listed] == [grant["id"]]
    assert replay.meta is not None and replay.meta[APPROVAL_META_KEY]["replay"] is True
    assert revoked.status_code == 200 and revoked.json()["revoked_by"] == "bob"
    assert replayed.status_code == 409 and "already revoked by bob" in replayed.json()["error"]
    assert by_agent.status_code == 403
    assert market.calls["em_publish_task"] == 1


async def test_a_grant_on_a_rule_that_offers_none_is_refused_with_the_reason_and_nothing_is_decided(
    start_airlock: StartAirlock, market: DemoMarket
) -> None:
    airlock = await start_airlock(policy=granting_policy())
    async with airlock.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": "t-1", "reason": "duplicate"}))
        approval = await airlock.wait_pending()
        refused = await airlock_post(airlock, approval["id"], {"grant_minutes": 10})
        too_long = await airlock_post(airlock, approval["id"], {"grant_minutes": "ten"})
        assert (await airlock.approval(approval["id"]))["status"] == "pending"
        await airlock.decide(approval["id"], "reject", reviewer="bob", reason="done")
        async with asyncio.timeout(10):
            await call
    assert refused.status_code == 400
    assert refused.json()["error"] == (
        "the policy rule for em_cancel_task (cancel) offers no grants; approve without one, or add `grants` to the rule"
    )
    assert too_long.status_code == 400 and too_long.json()["error"] == "grant_minutes must be a whole number of minutes"


async def airlock_post(airlock: AirlockUnderTest, approval_id: str, body: dict[str, Any]) -> Any:
    async with airlock.api(await airlock.reviewer_token("alice")) as api:
        return await api.post(f"/api/approvals/{approval_id}/approve", json=body)


async def test_the_cli_approves_with_a_grant_lists_it_and_revokes_it(
    start_airlock: StartAirlock, market: DemoMarket, tmp_path: Path, database_url: str
) -> None:
    airlock = await start_airlock(policy=granting_policy("identical", "tool"))
    config = str(write_config(tmp_path, database_url))
    await airlock.reviewer_token("bob")
    async with airlock.client() as client:
        call = asyncio.create_task(client.call_tool("em_publish_task", LARGE))
        approval = await airlock.wait_pending()
        shown = await acli("approvals", "show", approval["id"], "--config", config)
        approved = await acli(
            "approvals",
            "approve",
            approval["id"],
            "--as",
            "bob",
            "--grant",
            "30m",
            "--scope",
            "tool",
            "--config",
            config,
        )
        async with asyncio.timeout(10):
            assert not (await call).is_error
        first, granted = approved.stdout.splitlines()
        assert first == f"{approval['id']} approved by bob: agent-1 -> em_publish_task"
        assert granted.startswith("grant grt_") and "every call of em_publish_task on execution-market" in granted
        grant_id = granted.split(":")[0].removeprefix("grant ")
        listed = await acli("grants", "list", "--config", config)
        async with asyncio.timeout(10):
            assert not (await client.call_tool("em_publish_task", other(title="Another survey"))).is_error
        revoked = await acli("grants", "revoke", grant_id, "--as", "bob", "--config", config)
        replayed = await acli("grants", "revoke", grant_id, "--as", "bob", "--config", config)
        after = await acli("grants", "list", "--config", config)
        await parked_then_rejected(airlock, client, "em_publish_task", other(title="After the revoke"))
    assert (
        "  grants    identical calls or any call of the tool, up to 60 min (approve with --grant DURATION)"
        in shown.stdout
    )
    assert listed.stdout.strip() == granted
    assert revoked.stdout == f"grant {grant_id} revoked by bob\n"
    assert f"airlock: grant {grant_id} was already revoked by bob at " in one_line_error(replayed)
    assert after.stdout == "no live grants\n"
    assert market.calls["em_publish_task"] == 2


async def test_the_cli_refuses_a_grant_it_cannot_read_in_one_line(tmp_path: Path, database_url: str) -> None:
    config = str(write_config(tmp_path, database_url))
    result = await acli("approvals", "approve", "apr_x", "--as", "bob", "--grant", "soon", "--config", config)
    assert one_line_error(result) == "airlock: --grant: 'soon' is not a duration such as 30m or 2h"


async def test_a_grant_revoked_on_one_replica_covers_nothing_on_the_other_at_once(
    start_airlock: StartAirlock, market: DemoMarket
) -> None:
    replica_a = await start_airlock(policy=granting_policy("identical", "tool"))
    replica_b = await start_airlock()
    replica_b.tokens = replica_a.tokens  # one database: credentials issued on either work on both
    async with replica_a.client() as client:
        grant = (await approve_held(replica_a, client, LARGE, grant_minutes=30, grant_scope="tool"))["grant"]
        async with replica_b.api(await replica_b.reviewer_token("bob")) as on_b:
            assert (await on_b.post(f"/api/grants/{grant['id']}/revoke")).status_code == 200
        await parked_then_rejected(replica_a, client, "em_publish_task", other(title="Right after the revoke"))
    assert market.calls["em_publish_task"] == 1


async def test_only_calls_sent_to_a_rule_that_offers_grants_look_for_one(
    start_airlock: StartAirlock, market: DemoMarket, monkeypatch: pytest.MonkeyPatch
) -> None:
    airlock = await start_airlock(policy=granting_policy())
    approvals = airlock.runtime.approvals
    looked: list[str] = []
    real = approvals.covering_grant

    async def counted(**call: str) -> Grant | None:
        looked.append(call["tool"])
        return await real(**call)

    monkeypatch.setattr(approvals, "covering_grant", counted)
    async with airlock.client() as client:
        assert not (await client.call_tool("em_list_tasks", {})).is_error
        assert not (await client.call_tool("em_publish_task", other(bounty_usd=5))).is_error
        await parked_then_rejected(airlock, client, "em_cancel_task", {"task_id": "t-1", "reason": "duplicate"})
        await parked_then_rejected(airlock, client, "em_publish_task", LARGE)
    assert looked == ["em_publish_task"]
    assert (await airlock.approvals("all"))[0]["grants_offered"] == {"max_minutes": 60, "scope": ["identical"]}


async def test_a_tool_grant_never_covers_a_call_another_rule_decides(
    start_airlock: StartAirlock, market: DemoMarket
) -> None:
    policy = granting_policy("identical", "tool")
    huge = {
        "id": "huge-bounty",
        "tool": "em_publish_task",
        "when": {"bounty_usd": {"gt": 1000}},
        "action": "approve",
        "grants": {"max_minutes": 60, "scope": ["identical", "tool"]},
    }
    policy["rules"].insert(1, huge)
    airlock = await start_airlock(policy=policy)
    async with airlock.client() as client:
        await approve_held(airlock, client, LARGE, grant_minutes=30, grant_scope="tool")
        stricter = await parked_then_rejected(airlock, client, "em_publish_task", other(bounty_usd=5000))
    assert stricter["policy"]["rule"] == "huge-bounty"
    assert market.calls["em_publish_task"] == 1
