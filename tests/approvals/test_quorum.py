"""Quorum rules end to end: a held official-SDK client gets its result only after the Nth distinct
approval, the call runs once even when the approvals land at once on two replicas, and every
reviewer-facing surface says how far the quorum got.

Provenance: Airlock-defined (issue 18, item 2). Airlock under uvicorn in front of the demo
upstream, which counts every execution; two replicas are two Airlock apps on one database (SQLite
here, PostgreSQL under `AIRLOCK_TEST_DATABASE=postgres`), each with its own connection pool.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

from app.demo.upstream import DemoMarket
from tests.conftest import StartAirlock
from tests.harness import DEFAULT_POLICY, AirlockUnderTest, new_task
from tests.inbox.conftest import sign_in, web_client
from tests.test_cli import acli, write_config


def quorum_policy(**rule: Any) -> dict[str, Any]:
    """The default policy, with the cancel rule needing two approvals (and `rule`'s other fields)."""
    policy = copy.deepcopy(DEFAULT_POLICY)
    cancel = next(r for r in policy["rules"] if r["id"] == "cancel")
    cancel.update({"approvals": 2, **rule})
    return policy


def cancel_arguments(market: DemoMarket) -> dict[str, Any]:
    return {"task_id": new_task(market).id, "reason": "duplicate"}


async def test_two_reviewers_approving_at_once_on_two_replicas_run_the_call_once_for_the_held_client(
    start_airlock: StartAirlock, market: DemoMarket
) -> None:
    replica_a = await start_airlock(policy=quorum_policy())
    replica_b = await start_airlock()
    replica_b.tokens = replica_a.tokens  # one database: credentials issued on either work on both
    tokens = {name: await replica_a.reviewer_token(name) for name in ("alice", "bob")}
    async with replica_a.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", cancel_arguments(market)))
        approval = await replica_a.wait_pending()
        async with replica_a.api(tokens["alice"]) as on_a, replica_b.api(tokens["bob"]) as on_b:
            decisions = await asyncio.gather(
                on_a.post(f"/api/approvals/{approval['id']}/approve"),
                on_b.post(f"/api/approvals/{approval['id']}/approve"),
            )
        async with asyncio.timeout(15):
            result = await call
    assert [d.status_code for d in decisions] == [200, 200]
    assert sorted(d.json()["status"] for d in decisions) == ["approved", "pending"]
    assert not result.is_error
    assert market.calls["em_cancel_task"] == 1
    shown = await replica_b.approval(approval["id"])
    assert sorted(shown["quorum"]["approvals"]) == ["alice", "bob"]
    assert shown["quorum"]["progress"] in ("2 of 2 approvals, by alice and bob", "2 of 2 approvals, by bob and alice")


async def test_the_held_client_waits_through_the_first_approval_and_every_surface_shows_the_progress(
    start_airlock: StartAirlock, market: DemoMarket, tmp_path: Path, database_url: str
) -> None:
    airlock = await start_airlock(policy=quorum_policy())
    config = str(write_config(tmp_path, database_url))
    await airlock.reviewer_token("bob")
    async with airlock.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", cancel_arguments(market)))
        approval = await airlock.wait_pending()
        assert approval["quorum"] == {"needed": 2, "approvals": [], "progress": "0 of 2 approvals so far"}

        first = await airlock.decide(approval["id"], "approve", reviewer="alice")
        assert first.status_code == 200 and first.json()["status"] == "pending"
        assert first.json()["quorum"]["progress"] == "1 of 2 approvals, by alice"
        assert not call.done() and market.calls.get("em_cancel_task", 0) == 0

        shown = (await acli("approvals", "show", approval["id"], "--config", config)).stdout
        assert "Waiting for 1 more approval (1 of 2 approvals, by alice)" in shown
        async with web_client(airlock) as web:
            await sign_in(web, airlock, "bob")
            detail = (await web.get(f"/inbox/{approval['id']}")).text
            listing = (await web.get("/inbox")).text
        assert "1 of 2 approvals, by alice" in detail and "1 of 2 approvals, by alice" in listing

        second = await acli("approvals", "approve", approval["id"], "--as", "bob", "--config", config)
        assert second.stdout == f"{approval['id']} approved by bob: agent-1 -> em_cancel_task\n"
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error and market.calls["em_cancel_task"] == 1
    done = await airlock.approval(approval["id"])
    assert done["decided_by"] == "bob" and done["quorum"]["progress"] == "2 of 2 approvals, by alice and bob"
    assert [step["event"] for step in done["timeline"]].count("voted") == 1


async def test_a_rejection_after_one_approval_tells_the_held_client_and_the_call_never_runs(
    start_airlock: StartAirlock, market: DemoMarket
) -> None:
    airlock = await start_airlock(policy=quorum_policy())
    async with airlock.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", cancel_arguments(market)))
        approval = await airlock.wait_pending()
        assert (await airlock.decide(approval["id"], "approve", reviewer="alice")).status_code == 200
        rejected = await airlock.decide(approval["id"], "reject", reviewer="bob", reason="keep the task")
        async with asyncio.timeout(10):
            result = await call
    assert rejected.json()["status"] == "rejected"
    assert result.is_error and "keep the task" in " ".join(c.text for c in result.content if c.type == "text")
    assert market.calls.get("em_cancel_task", 0) == 0


async def test_the_requester_can_never_count_toward_the_quorum(start_airlock: StartAirlock, market: DemoMarket) -> None:
    airlock = await start_airlock(policy=quorum_policy())
    async with airlock.client("alice") as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", cancel_arguments(market)))
        approval = await airlock.wait_pending()
        own = await airlock.decide(approval["id"], "approve", reviewer="alice")
        bob = await airlock.decide(approval["id"], "approve", reviewer="bob")
        assert own.status_code == 403 and "alice made this call and cannot approve it" in own.json()["error"]
        assert bob.json()["status"] == "pending" and bob.json()["quorum"]["approvals"] == ["bob"]
        carol = await airlock.decide(approval["id"], "approve", reviewer="carol")
        async with asyncio.timeout(10):
            await call
    assert carol.json()["status"] == "approved"
    assert market.calls["em_cancel_task"] == 1


async def test_only_the_rules_named_reviewers_and_group_members_count(
    start_airlock: StartAirlock, market: DemoMarket
) -> None:
    policy = quorum_policy(reviewers=["alice"], reviewer_groups=["sre"])
    airlock = await start_airlock(policy=policy, reviewers={"bob": {"groups": ["sre"]}, "carol": {"groups": ["web"]}})
    async with airlock.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", cancel_arguments(market)))
        approval = await airlock.wait_pending()
        outsider = await airlock.decide(approval["id"], "approve", reviewer="carol")
        member = await airlock.decide(approval["id"], "approve", reviewer="bob")
        named = await airlock.decide(approval["id"], "approve", reviewer="alice")
        async with asyncio.timeout(10):
            await call
    assert outsider.status_code == 403
    assert outsider.json()["error"] == "the policy rule for em_cancel_task lets only alice, members of sre decide"
    assert (member.json()["status"], named.json()["status"]) == ("pending", "approved")
    assert named.json()["quorum"]["approvals"] == ["bob", "alice"]
    assert market.calls["em_cancel_task"] == 1


async def test_a_rule_without_approvals_still_decides_on_the_first_approval(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with airlock.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", cancel_arguments(market)))
        approval = await airlock.wait_pending()
        decided = await airlock.decide(approval["id"], "approve", reviewer="alice")
        async with asyncio.timeout(10):
            await call
    assert decided.json()["status"] == "approved"
    assert decided.json()["quorum"] == {"needed": 1, "approvals": ["alice"], "progress": None}
    assert market.calls["em_cancel_task"] == 1
