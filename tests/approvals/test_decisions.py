"""`app/approvals/decisions.py`: the rules about a decision hold in the one decide path, whatever the channel.

Provenance: Airlock-defined (issue 10, class 4: "decisions check who decides, at the moment they
decide"). `decide` is called directly, as every channel calls it; reviewers that the creation check
would now refuse (a second spelling of an identity) are written straight to the store, as data
from before that check would be.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from app.approvals.decisions import NotAllowed, ReasonRequired, Via, decide
from app.demo.upstream import DemoMarket
from app.store import tokens as token_store
from tests.harness import DEFAULT_POLICY, AirlockUnderTest, new_task

CHANNELS: list[Via] = ["api", "cli", "slack", "inbox"]


@asynccontextmanager
async def held(airlock: AirlockUnderTest, market: DemoMarket, agent: str) -> AsyncIterator[dict[str, Any]]:
    async with airlock.client(agent) as client:
        call = asyncio.create_task(client.call_tool("em_cancel_task", {"task_id": new_task(market).id, "reason": "x"}))
        try:
            yield await airlock.wait_pending()
        finally:
            call.cancel()


async def add_reviewer(airlock: AirlockUnderTest, name: str, *, disabled: bool = False) -> None:
    async with airlock.runtime.db.write() as conn:
        await token_store.insert_reviewer(
            conn, name=name, token_hash=f"hash-of-{name}", slack_user_id=None, now=time.time()
        )
        if disabled:
            await token_store.disable_reviewer(conn, name=name, now=time.time())


@pytest.mark.parametrize(
    "reviewer", ["RT-Agent", "rt-AGENT", "\uff32\uff34-agent"], ids=["mixed", "upper", "fullwidth"]
)
async def test_a_reviewer_cannot_approve_a_call_made_under_their_identity_spelled_differently(
    airlock: AirlockUnderTest, market: DemoMarket, reviewer: str
) -> None:
    await airlock.agent_token("rt-agent")
    await add_reviewer(airlock, reviewer)
    async with held(airlock, market, "rt-agent") as approval:
        with pytest.raises(NotAllowed, match=r"made this call \(as agent rt-agent, the same identity\) and cannot"):
            await decide(airlock.runtime.ledger, approval["id"], reviewer=reviewer, verdict="approve", via="api")
    assert (await airlock.approval(approval["id"]))["status"] == "pending"


@pytest.mark.parametrize("via", CHANNELS)
async def test_a_disabled_or_unknown_reviewer_decides_nothing_in_any_channel(
    airlock: AirlockUnderTest, market: DemoMarket, via: Via
) -> None:
    await add_reviewer(airlock, "mallory", disabled=True)
    async with held(airlock, market, "agent-1") as approval:
        with pytest.raises(NotAllowed, match="reviewer mallory is disabled and cannot decide"):
            await decide(airlock.runtime.ledger, approval["id"], reviewer="mallory", verdict="approve", via=via)
        with pytest.raises(NotAllowed, match="root@cli is not an Airlock reviewer"):
            await decide(airlock.runtime.ledger, approval["id"], reviewer="root@cli", verdict="approve", via=via)
    assert (await airlock.approval(approval["id"]))["status"] == "pending"
    assert market.calls.get("em_cancel_task", 0) == 0


@pytest.mark.parametrize("via", CHANNELS)
async def test_a_rejection_without_a_reason_is_refused_in_every_channel(
    airlock: AirlockUnderTest, market: DemoMarket, via: Via
) -> None:
    await airlock.reviewer_token("carol")
    async with held(airlock, market, "agent-1") as approval:
        for reason in (None, "", "   "):
            with pytest.raises(ReasonRequired, match="a rejection needs a reason"):
                await decide(
                    airlock.runtime.ledger, approval["id"], reviewer="carol", verdict="reject", via=via, reason=reason
                )
    assert (await airlock.approval(approval["id"]))["status"] == "pending"


async def test_the_api_answers_a_rejection_without_reason_with_a_400_sentence(
    airlock: AirlockUnderTest, market: DemoMarket
) -> None:
    async with held(airlock, market, "agent-1") as approval:
        response = await airlock.decide(approval["id"], "reject", reviewer="carol")
    assert response.status_code == 400
    assert response.json() == {"error": "a rejection needs a reason: the agent is told who rejected its call and why"}


async def test_a_rules_reviewer_list_is_compared_as_identities(airlock: AirlockUnderTest, market: DemoMarket) -> None:
    airlock.set_policy(
        {**DEFAULT_POLICY, "rules": [{"tool": "em_cancel_task", "action": "approve", "reviewers": ["Carol"]}]}
    )
    await airlock.reviewer_token("carol")
    await airlock.reviewer_token("dave")
    async with held(airlock, market, "agent-1") as approval:
        with pytest.raises(NotAllowed, match="lets only Carol decide"):
            await decide(airlock.runtime.ledger, approval["id"], reviewer="dave", verdict="approve", via="api")
        row = await decide(airlock.runtime.ledger, approval["id"], reviewer="carol", verdict="approve", via="api")
    assert row.status == "approved" and row.decided_by == "carol"
