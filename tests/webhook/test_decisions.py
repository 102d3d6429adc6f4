"""`POST /webhook/decisions`: signed decisions through the one decide path, and everything else refused.

Provenance: Airlock-defined behaviour (issue 18, item 5: "a signed decision endpoint … through the
same decide path"; "webhook signatures, replays and bad signatures refused"), end to end with a
real held call through the official MCP client, Airlock under uvicorn and the demo upstream.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from app.demo.upstream import DemoMarket
from app.store import tokens as token_store
from tests.harness import DEFAULT_POLICY, AirlockUnderTest, new_task
from tests.webhook.conftest import SECRET, StartWebhookAirlock, send_decision, signature_of
from tests.webhook.receiver import Receiver


def text_of(result: Any) -> str:
    return " ".join(item.text for item in result.content if getattr(item, "type", "") == "text")


async def test_a_signed_approval_runs_the_held_call_and_the_agent_gets_its_result(
    start_webhook_airlock: StartWebhookAirlock, receiver: Receiver, market: DemoMarket, mode: str
) -> None:
    airlock = await start_webhook_airlock(receiver)
    task = new_task(market)
    async with airlock.client(mode=mode) as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "dup"}))
        approval = await airlock.wait_pending()
        response = await send_decision(
            airlock, {"approval_id": approval["id"], "decision": "approve", "reviewer": "bob"}
        )
        assert response.status_code == 200, response.text
        assert response.json() == {
            "approval_id": approval["id"],
            "status": "approved",
            "decided_by": "bob",
            "quorum": None,
        }
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error, text_of(result)
    assert market.calls["em_cancel_task"] == 1
    detail = await airlock.approval(approval["id"])
    assert detail["decided_via"] == "webhook"
    decided = [entry for entry in detail["timeline"] if entry["event"] == "decided"]
    assert decided and decided[0]["detail"] == "via webhook"
    await receiver.wait_until(lambda _: len(receiver.events(approval["id"])) == 4)
    assert receiver.events(approval["id"])[1]["approval"]["decided_via"] == "webhook"


async def test_a_signed_rejection_with_a_reason_tells_the_agent_who_and_why(
    start_webhook_airlock: StartWebhookAirlock, receiver: Receiver, market: DemoMarket
) -> None:
    airlock = await start_webhook_airlock(receiver)
    task = new_task(market)
    async with airlock.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "dup"}))
        approval = await airlock.wait_pending()
        decision = {"approval_id": approval["id"], "decision": "reject", "reviewer": "bob", "reason": "keep it"}
        assert (await send_decision(airlock, decision)).status_code == 200
        async with asyncio.timeout(10):
            result = await call
    assert result.is_error and "bob" in text_of(result) and "keep it" in text_of(result)
    assert market.calls["em_cancel_task"] == 0


async def pending(airlock: AirlockUnderTest, market: DemoMarket, client: Any) -> tuple[asyncio.Task[Any], str]:
    task = new_task(market)
    call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": task.id, "reason": "dup"}))
    return call, str((await airlock.wait_pending())["id"])


SIGNATURE_REFUSALS = {
    "no signature": ({"header": ""}, "missing Airlock-Signature"),
    "malformed": ({"header": "sha256=abc"}, "malformed"),
    "wrong secret": ({"secret": "not-the-secret-0123456789abcdefghijklmnop"}, "does not match"),
    "stale": ({"offset": -400}, "stale"),
    "from the future": ({"offset": 400}, "stale"),
}


@pytest.mark.parametrize("kwargs,reason", SIGNATURE_REFUSALS.values(), ids=SIGNATURE_REFUSALS.keys())
async def test_a_decision_without_a_valid_fresh_signature_is_refused_with_401_and_changes_nothing(
    start_webhook_airlock: StartWebhookAirlock,
    receiver: Receiver,
    market: DemoMarket,
    kwargs: dict[str, Any],
    reason: str,
) -> None:
    airlock = await start_webhook_airlock(receiver)
    async with airlock.client() as client:
        call, approval_id = await pending(airlock, market, client)
        response = await send_decision(
            airlock, {"approval_id": approval_id, "decision": "approve", "reviewer": "bob"}, **kwargs
        )
        assert response.status_code == 401
        assert reason in response.json()["error"]
        assert (await airlock.approval(approval_id))["status"] == "pending"
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)


async def test_a_body_that_does_not_match_its_signature_is_refused(
    start_webhook_airlock: StartWebhookAirlock, receiver: Receiver, market: DemoMarket
) -> None:
    airlock = await start_webhook_airlock(receiver)
    async with airlock.client() as client:
        call, approval_id = await pending(airlock, market, client)
        signed = json.dumps({"approval_id": approval_id, "decision": "reject", "reviewer": "bob", "reason": "x"})
        at = int(time.time())
        header = f"t={at},v1={signature_of(SECRET, at, signed.encode())}"
        tampered = signed.replace("reject", "approve").replace(', "reason": "x"', "").encode()
        response = await send_decision(airlock, tampered, header=header)
        assert response.status_code == 401 and "does not match" in response.json()["error"]
        assert (await airlock.approval(approval_id))["status"] == "pending"
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)


async def test_a_replayed_signed_request_is_refused(
    start_webhook_airlock: StartWebhookAirlock, receiver: Receiver, market: DemoMarket
) -> None:
    airlock = await start_webhook_airlock(receiver)
    async with airlock.client() as client:
        call, approval_id = await pending(airlock, market, client)
        body = json.dumps({"approval_id": approval_id, "decision": "reject", "reviewer": "bob"}).encode()
        at = int(time.time())
        header = f"t={at},v1={signature_of(SECRET, at, body)}"
        first = await send_decision(airlock, body, header=header)
        assert first.status_code == 400, "no reason: refused by the decide path, but the signature is used"
        replay = await send_decision(airlock, body, header=header)
        assert replay.status_code == 401 and "replayed" in replay.json()["error"]
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)


async def disable(airlock: AirlockUnderTest, name: str) -> None:
    async with airlock.runtime.db.write() as conn:
        assert await token_store.disable_reviewer(conn, name=name, now=time.time())


REVIEWER_REFUSALS = {
    "unknown reviewer": ({"reviewer": "mallory", "decision": "approve"}, 403, "not an Airlock reviewer"),
    "disabled reviewer": ({"reviewer": "carol", "decision": "approve"}, 403, "disabled"),
    "self-approval": ({"reviewer": "agent-1", "decision": "approve"}, 403, "made this call"),
    "reject without a reason": ({"reviewer": "bob", "decision": "reject"}, 400, "needs a reason"),
    "unknown approval": ({"reviewer": "bob", "decision": "approve", "approval_id": "apr_nope"}, 404, "no approval"),
    "not a decision": ({"reviewer": "bob", "decision": "maybe"}, 400, '"approve" or "reject"'),
}


@pytest.mark.parametrize("fields,status,reason", REVIEWER_REFUSALS.values(), ids=REVIEWER_REFUSALS.keys())
async def test_the_decide_paths_rules_apply_to_webhook_decisions(
    start_webhook_airlock: StartWebhookAirlock,
    receiver: Receiver,
    market: DemoMarket,
    fields: dict[str, Any],
    status: int,
    reason: str,
) -> None:
    airlock = await start_webhook_airlock(receiver)
    for name in ("carol", "agent-1"):
        await airlock.reviewer_token(name)
    await disable(airlock, "carol")
    async with airlock.client() as client:
        call, approval_id = await pending(airlock, market, client)
        response = await send_decision(airlock, {"approval_id": approval_id, **fields})
        assert response.status_code == status, response.text
        assert reason in response.json()["error"]
        assert (await airlock.approval(approval_id))["status"] == "pending"
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
    assert market.calls["em_cancel_task"] == 0


async def test_two_concurrent_decisions_one_wins_and_the_other_gets_409(
    start_webhook_airlock: StartWebhookAirlock, receiver: Receiver, market: DemoMarket
) -> None:
    airlock = await start_webhook_airlock(receiver)
    async with airlock.client() as client:
        call, approval_id = await pending(airlock, market, client)
        responses = await asyncio.gather(
            send_decision(airlock, {"approval_id": approval_id, "decision": "approve", "reviewer": "alice"}),
            send_decision(
                airlock, {"approval_id": approval_id, "decision": "reject", "reviewer": "bob", "reason": "no"}
            ),
        )
        async with asyncio.timeout(10):
            result = await call
    assert sorted(r.status_code for r in responses) == [200, 409]
    [winner] = [r.json() for r in responses if r.status_code == 200]
    [loser] = [r.json() for r in responses if r.status_code == 409]
    assert f"already {winner['status']} by {winner['decided_by']}" in loser["error"]
    assert result.is_error == (winner["status"] == "rejected")
    assert market.calls["em_cancel_task"] == (1 if winner["status"] == "approved" else 0)


async def test_a_body_larger_than_any_decision_is_refused_with_413(
    start_webhook_airlock: StartWebhookAirlock, receiver: Receiver
) -> None:
    airlock = await start_webhook_airlock(receiver)
    body = json.dumps({"approval_id": "apr_x", "decision": "reject", "reviewer": "bob", "reason": "x" * 20000})
    response = await send_decision(airlock, body.encode())
    assert response.status_code == 413


async def test_a_signed_quorum_vote_answers_pending_with_the_progress_and_the_approved_event_names_every_voter(
    start_webhook_airlock: StartWebhookAirlock, receiver: Receiver, market: DemoMarket
) -> None:
    """Issue 18, item 2: a webhook vote counts like any channel's; the call runs after the second."""
    policy = {**DEFAULT_POLICY, "rules": [{"tool": "em_cancel_task", "action": "approve", "approvals": 2}]}
    airlock = await start_webhook_airlock(receiver, policy=policy)
    async with airlock.client() as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": new_task(market).id, "reason": "x"}))
        approval = await airlock.wait_pending()
        first = await send_decision(airlock, {"approval_id": approval["id"], "decision": "approve", "reviewer": "bob"})
        assert first.json() == {
            "approval_id": approval["id"],
            "status": "pending",
            "decided_by": None,
            "quorum": "1 of 2 approvals, by bob",
        }
        assert market.calls.get("em_cancel_task", 0) == 0
        second = await airlock.decide(approval["id"], "approve", reviewer="alice")
        assert second.json()["status"] == "approved"
        async with asyncio.timeout(10):
            await call
    assert market.calls["em_cancel_task"] == 1
    await receiver.wait_until(lambda _: len(receiver.events(approval["id"])) == 4)
    approved = receiver.events(approval["id"])[1]["approval"]
    assert approved["quorum"] == {
        "needed": 2,
        "approvals": ["bob", "alice"],
        "progress": "2 of 2 approvals, by bob and alice",
    }
