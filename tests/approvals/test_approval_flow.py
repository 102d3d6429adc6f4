"""Human approval end to end: park, decide, resume or fail the held request, in both protocol eras.

Provenance: Airlock-defined behaviour (issue: human approval), driven through the official `mcp`
Client against Airlock under uvicorn in front of the demo upstream, which counts every execution.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.approvals.outcomes import APPROVAL_META_KEY
from app.demo.upstream import DemoMarket
from tests.conftest import StartAirlock
from tests.harness import DEFAULT_POLICY, AirlockUnderTest, approval_of, new_task
from tests.net import wait_for


def text_of(result: Any) -> str:
    return " ".join(item.text for item in result.content if getattr(item, "type", "") == "text")


async def test_approved_call_runs_once_and_the_held_client_receives_the_upstream_result(
    airlock: AirlockUnderTest, market: DemoMarket, mode: str
) -> None:
    task = new_task(market)
    async with airlock.client(mode=mode) as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "duplicate"}))
        approval = await airlock.wait_pending()
        assert market.calls["em_cancel_task"] == 0, "nothing runs before a human says yes"
        response = await airlock.decide(approval["id"], "approve")
        assert response.status_code == 200, response.text
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error, text_of(result)
    assert result.structured_content["status"] == "cancelled"
    assert market.calls["em_cancel_task"] == 1
    assert approval["tool"] == "em_cancel_task" and approval["agent"] == "agent-1"
    assert approval["arguments"] == {"task_id": task.id, "reason": "duplicate"}
    assert approval["policy"]["reason"] == "cancelling is irreversible"


async def test_rejected_call_never_runs_and_the_client_receives_who_rejected_it_and_why(
    airlock: AirlockUnderTest, market: DemoMarket, mode: str
) -> None:
    task = new_task(market)
    async with airlock.client(mode=mode) as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval = await airlock.wait_pending()
        response = await airlock.decide(approval["id"], "reject", reviewer="bob", reason="the task is still needed")
        assert response.status_code == 200
        async with asyncio.timeout(10):
            result = await call
    assert result.is_error
    text = text_of(result)
    assert "rejected" in text and "bob" in text and "the task is still needed" in text and "did not run" in text
    assert approval_of(result)["status"] == "rejected"
    assert market.calls["em_cancel_task"] == 0
    assert market.tasks[task.id].status == "published"


async def test_pending_approval_expires_on_time_and_the_held_call_is_told(
    start_airlock: StartAirlock, market: DemoMarket, mode: str
) -> None:
    policy = {**DEFAULT_POLICY, "rules": [{"tool": "em_cancel_task", "action": "approve", "timeout": 1}]}
    airlock = await start_airlock(policy=policy)
    task = new_task(market)
    async with airlock.client(mode=mode) as client:
        async with asyncio.timeout(10):
            result = await client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"})
    assert result.is_error
    assert "expired" in text_of(result) and "did not run" in text_of(result)
    assert market.calls["em_cancel_task"] == 0
    assert (await airlock.approvals("expired"))[0]["tool"] == "em_cancel_task"


async def test_a_second_decision_gets_409_naming_who_decided_first(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    task = new_task(market)
    async with airlock.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval = await airlock.wait_pending()
        first = await airlock.decide(approval["id"], "approve", reviewer="alice")
        second = await airlock.decide(approval["id"], "reject", reviewer="bob", reason="too late")
        async with asyncio.timeout(10):
            result = await call
    assert first.status_code == 200
    assert second.status_code == 409
    assert "already approved by alice" in second.json()["error"]
    assert not result.is_error
    assert market.calls["em_cancel_task"] == 1


async def test_a_reviewer_cannot_approve_a_call_made_under_their_own_identity(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    task = new_task(market)
    async with airlock.client("alice") as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval = await airlock.wait_pending()
        own = await airlock.decide(approval["id"], "approve", reviewer="alice")
        other = await airlock.decide(approval["id"], "approve", reviewer="bob")
        async with asyncio.timeout(10):
            await call
    assert own.status_code == 403 and "cannot approve" in own.json()["error"]
    assert other.status_code == 200
    assert market.calls["em_cancel_task"] == 1


async def test_agent_tokens_can_never_decide(airlock: AirlockUnderTest, market: DemoMarket) -> None:
    task = new_task(market)
    async with airlock.client("agent-1") as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval = await airlock.wait_pending()
        agent_token = await airlock.agent_token("agent-2")
        async with airlock.api(agent_token) as api:
            response = await api.post(f"/api/approvals/{approval['id']}/approve")
            listing = await api.get("/api/approvals")
        async with airlock.api(None) as api:
            anonymous = await api.post(f"/api/approvals/{approval['id']}/approve")
        call.cancel()
    assert response.status_code == 403 and "agent tokens" in response.json()["error"]
    assert listing.status_code == 403
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    assert (await airlock.approvals("pending"))[0]["id"] == approval["id"]


async def test_hold_budget_answers_pending_and_an_identical_retry_receives_the_real_result(
    start_airlock: StartAirlock, market: DemoMarket, mode: str
) -> None:
    airlock = await start_airlock(approvals={"hold_seconds": 1})
    task = new_task(market)
    arguments = {"task_id": task.id, "reason": "x"}
    async with airlock.client(mode=mode) as client:
        async with asyncio.timeout(10):
            first = await client.call_tool("em_cancel_task", arguments)
        meta = approval_of(first)
        assert first.is_error
        assert meta["status"] == "pending" and meta["retry"] == "identical"
        assert meta["reviewUrl"].endswith(f"/inbox/{meta['id']}")
        text = text_of(first)
        assert "has NOT run" in text and "same arguments" in text
        assert (await airlock.decide(meta["id"], "approve")).status_code == 200
        async with asyncio.timeout(10):
            retry = await client.call_tool("em_cancel_task", arguments)
    assert not retry.is_error, text_of(retry)
    assert retry.structured_content["status"] == "cancelled"
    assert approval_of(retry)["id"] == meta["id"]
    assert market.calls["em_cancel_task"] == 1


async def test_an_approved_call_runs_even_when_no_request_is_held_and_waits_for_the_retry(
    start_airlock: StartAirlock, market: DemoMarket, mode: str
) -> None:
    airlock = await start_airlock(approvals={"hold_seconds": 1})
    task = new_task(market)
    arguments = {"task_id": task.id, "reason": "x"}
    async with airlock.client(mode=mode) as client:
        async with asyncio.timeout(10):
            first = await client.call_tool("em_cancel_task", arguments)
        approval_id = approval_of(first)["id"]
        await airlock.decide(approval_id, "approve")
        await wait_for(lambda: market.calls["em_cancel_task"] == 1, timeout=10)
        async with asyncio.timeout(10):
            retry = await client.call_tool("em_cancel_task", arguments)
        async with asyncio.timeout(10):
            fresh = await client.call_tool("em_cancel_task", arguments)
    assert not retry.is_error
    assert market.calls["em_cancel_task"] == 1, "the stored result is delivered; the call never runs twice"
    assert not fresh.is_error and approval_of(fresh)["id"] == approval_id, (
        "once the outcome was delivered, an identical call gets it again (a replay: it may have been lost)"
    )
    assert approval_of(fresh)["replay"] is True and "replay" not in approval_of(retry)


async def test_an_identical_call_while_pending_attaches_instead_of_piling_up(
    airlock: AirlockUnderTest, market: DemoMarket, mode: str
) -> None:
    task = new_task(market)
    arguments = {"task_id": task.id, "reason": "x"}
    async with airlock.client(mode=mode) as one, airlock.client(mode=mode) as two:
        first = asyncio.create_task(one.call_tool("em_cancel_task", arguments))
        approval = await airlock.wait_pending()
        second = asyncio.create_task(two.call_tool("em_cancel_task", arguments))
        await airlock.wait_steps(approval["id"], "attached", 1)
        assert len(await airlock.approvals("pending")) == 1
        await airlock.decide(approval["id"], "approve")
        async with asyncio.timeout(10):
            results = await asyncio.gather(first, second)
    assert [r.is_error for r in results] == [False, False]
    assert market.calls["em_cancel_task"] == 1


async def test_different_arguments_are_a_different_call_with_their_own_approval(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    one, two = new_task(market), new_task(market)
    async with airlock.client() as client:
        calls = [
            asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": t.id, "reason": "x"}))
            for t in (one, two)
        ]
        await airlock.wait_pending(count=2)
        for call in calls:
            call.cancel()
    assert len(await airlock.approvals("pending")) == 2


async def test_an_agent_cannot_flood_reviewers_past_its_pending_cap(
    start_airlock: StartAirlock, market: DemoMarket
) -> None:
    airlock = await start_airlock(approvals={"max_pending_per_agent": 2, "hold_seconds": 1})
    tasks = [new_task(market) for _ in range(3)]
    async with airlock.client() as client:
        results = [await client.call_tool("em_cancel_task", {"task_id": t.id, "reason": "x"}) for t in tasks]
    assert [bool(r.meta and APPROVAL_META_KEY in r.meta) for r in results] == [True, True, False]
    assert "already have 2 calls waiting" in text_of(results[2])
    assert len(await airlock.approvals("pending")) == 2


async def test_many_concurrent_approvals_of_one_call_run_the_upstream_exactly_once(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    task = new_task(market)
    arguments = {"task_id": task.id, "reason": "x"}
    reviewers = [f"reviewer-{i}" for i in range(10)]
    for name in reviewers:
        await airlock.reviewer_token(name)
    async with airlock.client() as client:
        holders = [asyncio.create_task(client.call_tool("em_cancel_task", arguments)) for _ in range(5)]
        approval = await airlock.wait_pending()
        await airlock.wait_steps(approval["id"], "attached", 4)
        decisions = await asyncio.gather(
            *(airlock.decide(approval["id"], "approve", reviewer=reviewers[i % 10]) for i in range(50))
        )
        async with asyncio.timeout(15):
            results = await asyncio.gather(*holders)
    assert sorted(r.status_code for r in decisions) == [200] + [409] * 49
    assert all(not r.is_error for r in results)
    assert market.calls["em_cancel_task"] == 1


async def test_waiting_is_reported_as_progress_when_the_client_sent_a_progress_token(
    start_airlock: StartAirlock, market: DemoMarket, mode: str
) -> None:
    airlock = await start_airlock(approvals={"progress_interval_seconds": 0.2})
    task = new_task(market)
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with airlock.client(mode=mode) as client:
        call = asyncio.create_task(
            client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}, progress_callback=on_progress)
        )
        approval = await airlock.wait_pending()
        await wait_for(lambda: len(messages) >= 2, timeout=10)
        await airlock.decide(approval["id"], "approve")
        async with asyncio.timeout(10):
            await call
    assert f"approval {approval['id']}" in messages[0]
    assert f"/inbox/{approval['id']}" in messages[0] and "expires in" in messages[0]


@pytest.mark.parametrize("verdict", ["approve", "reject"])
async def test_the_decision_lands_in_the_audit_timeline(
    airlock: AirlockUnderTest, market: DemoMarket, verdict: str
) -> None:
    task = new_task(market)
    async with airlock.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"}))
        approval = await airlock.wait_pending()
        await airlock.wait_steps(approval["id"], "notified")
        await airlock.decide(approval["id"], verdict, reason="checked")
        async with asyncio.timeout(10):
            await call
    detail = await airlock.approval(approval["id"])
    events = [entry["event"] for entry in detail["timeline"]]
    expected = (
        ["parked", "notified", "decided", "executing", "executed", "delivered"]
        if verdict == "approve"
        else ["parked", "notified", "decided", "delivered"]
    )
    assert events == expected
    assert detail["decided_by"] == "alice" and detail["decision_reason"] == "checked"


async def test_hold_budget_comes_from_the_agent_then_the_rule_then_the_default(
    start_airlock: StartAirlock, market: DemoMarket
) -> None:
    policy = {**DEFAULT_POLICY, "rules": [{"tool": "em_cancel_task", "action": "approve", "hold": 1}]}
    airlock = await start_airlock(
        policy=policy, approvals={"hold_seconds": 600}, agents={"patient-bot": {"hold_seconds": 600}}
    )
    task = new_task(market)
    async with airlock.client("quick-bot") as client:
        async with asyncio.timeout(10):
            by_rule = await client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "x"})
    assert approval_of(by_rule)["status"] == "pending", "the rule's 1 s hold applies"
    async with airlock.client("patient-bot") as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "y"}))
        approval = await airlock.wait_pending(count=2)
        assert await _hold_seconds(airlock, approval["id"]) == pytest.approx(600, abs=1), (
            "the agent's own budget wins over the rule's"
        )
        await airlock.decide(approval["id"], "approve")
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error


async def _hold_seconds(airlock: AirlockUnderTest, approval_id: str) -> float:
    from sqlalchemy import select

    from app.store.models import streams

    async with airlock.runtime.db.read() as conn:
        row = (
            await conn.execute(
                select(streams.c.hold_until - streams.c.created_at).where(streams.c.approval_id == approval_id)
            )
        ).one()
    return float(row[0])
