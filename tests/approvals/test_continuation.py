"""One human decision covers a call that asks for input, in both eras, and never runs it twice.

Provenance: spec (2026-07-28 MRTR: a server that needs input answers `tools/call` with
`resultType: "input_required"` without running the tool, and the client repeats the call with
`inputResponses` and the echoed `requestState`; in the handshake era the same question is an
`elicitation/create` request on the call's stream) plus Airlock-defined behaviour
(`app/approvals/continuation.py`: the repeat of an approved round is approved by that decision,
once, and only when it answers exactly what was asked; `app/approvals/queue.py`: an identical
repeat of a round whose outcome was delivered gets that outcome again, marked as a replay, and
never runs again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from html import unescape
from typing import Any

import pytest
from mcp.client.session import ClientRequestContext
from mcp_types import ElicitRequestParams, ElicitResult, ErrorData, InputRequiredResult

from app.approvals.outcomes import APPROVAL_META_KEY
from app.demo.upstream import DemoMarket, Task
from tests.conftest import StartAirlock
from tests.harness import DEFAULT_POLICY, AirlockUnderTest, approval_of, submitted_task
from tests.inbox.conftest import sign_in, web_client

RATING_NEEDS_APPROVAL = {
    **DEFAULT_POLICY,
    "hide": [],
    "rules": [{"tool": "em_rate_worker", "action": "approve", "reason": "ratings move money"}],
}


async def rate_four(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult | ErrorData:
    return ElicitResult(action="accept", content={"rating": 4})


async def start(start_airlock: StartAirlock, **approvals: Any) -> AirlockUnderTest:
    return await start_airlock(policy=RATING_NEEDS_APPROVAL, approvals=approvals)


async def test_one_approval_covers_a_call_that_asks_the_user_for_input(
    start_airlock: StartAirlock, market: DemoMarket, mode: str
) -> None:
    airlock = await start(start_airlock)
    task = submitted_task(market)
    async with airlock.client(mode=mode, elicitation_callback=rate_four) as client:
        call = asyncio.create_task(client.call_tool("em_rate_worker", {"task_id": task.id}))
        approval = await airlock.wait_pending()
        assert (await airlock.decide(approval["id"], "approve")).status_code == 200
        async with asyncio.timeout(10):
            result = await call
    assert not result.is_error, result.content
    assert result.structured_content is not None and result.structured_content["action"] == "accept"
    assert (task.status, task.rating) == ("completed", 4)
    assert market.calls["em_rate_worker"] == 1
    rows = await airlock.approvals("all")
    assert [row["decided_via"] for row in rows if row["decided_via"] != "continuation"] == ["api"], (
        "a human decided once"
    )
    if mode == "auto":
        [repeat, first] = rows
        assert repeat["continues"] == first["id"] and repeat["status"] == "completed"
        assert repeat["decided_by"] == "alice"
        assert first["result"]["result"]["resultType"] == "input_required"
    else:
        assert len(rows) == 1 and rows[0]["status"] == "completed"


async def test_the_inbox_shows_the_repeat_as_a_continuation_of_the_approved_round(
    start_airlock: StartAirlock, market: DemoMarket
) -> None:
    airlock = await start(start_airlock)
    task = submitted_task(market)
    async with airlock.client(mode="auto", elicitation_callback=rate_four) as client:
        call = asyncio.create_task(client.call_tool("em_rate_worker", {"task_id": task.id}))
        approval = await airlock.wait_pending()
        await airlock.decide(approval["id"], "approve", reviewer="bob")
        async with asyncio.timeout(10):
            await call
    [repeat, first] = await airlock.approvals("all")
    async with web_client(airlock) as browser:
        await sign_in(browser, airlock)
        page = unescape((await browser.get(f"/inbox/{repeat['id']}")).text)
    assert f'href="/inbox/{first["id"]}"' in page
    assert "Approved by bob via a continuation" in page
    assert f"continues {first['id']}, which bob approved" in page


async def approved_first_round(airlock: AirlockUnderTest, client: Any, task: Task) -> InputRequiredResult:
    """Drive the 2026 loop by hand: the approved first round's `input_required` answer."""
    call = asyncio.create_task(
        client.session.call_tool("em_rate_worker", {"task_id": task.id}, allow_input_required=True)
    )
    approval = await airlock.wait_pending()
    await airlock.decide(approval["id"], "approve")
    async with asyncio.timeout(10):
        first = await call
    assert isinstance(first, InputRequiredResult) and first.request_state and first.input_requests
    return first


def answers(first: InputRequiredResult, rating: int) -> dict[str, Any]:
    assert first.input_requests is not None
    return {key: ElicitResult(action="accept", content={"rating": rating}) for key in first.input_requests}


async def test_a_replayed_continuation_gets_the_stored_outcome_and_does_not_run_again(
    start_airlock: StartAirlock, market: DemoMarket
) -> None:
    airlock = await start(start_airlock)
    task = submitted_task(market)
    async with airlock.client(mode="auto", elicitation_callback=rate_four) as client:
        first = await approved_first_round(airlock, client, task)
        seed: dict[str, Any] = {"input_responses": answers(first, 4), "request_state": first.request_state}
        async with asyncio.timeout(10):
            done = await client.call_tool("em_rate_worker", {"task_id": task.id}, **seed)
            replay = await client.call_tool("em_rate_worker", {"task_id": task.id}, **seed)
    assert not done.is_error and task.rating == 4
    assert not replay.is_error and replay.meta is not None
    assert replay.structured_content == done.structured_content
    meta = replay.meta[APPROVAL_META_KEY]
    assert meta["replay"] is True and meta["id"] == approval_of(done)["id"], "the same outcome, again"
    assert market.calls["em_rate_worker"] == 1
    assert len(await airlock.approvals("all")) == 2, "the first round and its continuation; nothing new to approve"


async def test_two_racing_repeats_run_the_tool_once(start_airlock: StartAirlock, market: DemoMarket) -> None:
    """The second repeat attaches to the first one's continuation if it is still open; if that outcome
    was already delivered, the second gets it again as a replay. Either way, one run and one result."""
    airlock = await start(start_airlock)
    task = submitted_task(market)
    async with (
        airlock.client(mode="auto", elicitation_callback=rate_four) as one,
        airlock.client(mode="auto", elicitation_callback=rate_four) as two,
    ):
        first = await approved_first_round(airlock, one, task)
        seed: dict[str, Any] = {"input_responses": answers(first, 4), "request_state": first.request_state}
        async with asyncio.timeout(10):
            results = await asyncio.gather(
                *(client.call_tool("em_rate_worker", {"task_id": task.id}, **seed) for client in (one, two))
            )
    assert all(not result.is_error and result.meta for result in results)
    assert len({result.meta[APPROVAL_META_KEY]["id"] for result in results if result.meta}) == 1
    assert market.calls["em_rate_worker"] == 1 and task.rating == 4


Repeat = Callable[[InputRequiredResult], dict[str, Any]]
"""What a repeat sends, given the approved round's `input_required` answer (plus `agent`, default agent-1)."""


@pytest.mark.parametrize(
    "repeat",
    [
        lambda first: {"input_responses": answers(first, 5), "request_state": "forged"},
        lambda first: {"input_responses": {}, "request_state": first.request_state},
        lambda first: {"input_responses": answers(first, 1), "request_state": first.request_state, "agent": "agent-2"},
    ],
    ids=["another request state", "not answering what was asked", "another agent"],
)
async def test_a_repeat_that_does_not_continue_the_approved_round_needs_a_human(
    start_airlock: StartAirlock, market: DemoMarket, repeat: Repeat
) -> None:
    airlock = await start(start_airlock)
    task = submitted_task(market)
    async with airlock.client("agent-1", mode="auto", elicitation_callback=rate_four) as client:
        first = await approved_first_round(airlock, client, task)
    seed = repeat(first)
    async with airlock.client(seed.pop("agent", "agent-1"), mode="auto", elicitation_callback=rate_four) as client:
        held = asyncio.create_task(client.call_tool("em_rate_worker", {"task_id": task.id}, **seed))
        waiting = await airlock.wait_pending()
        held.cancel()
    [parked] = [row for row in await airlock.approvals("all") if row["id"] == waiting["id"]]
    assert parked["continues"] is None and parked["decided_via"] is None, "parked for a human, not continued"
    assert (task.status, market.calls["em_rate_worker"]) == ("submitted", 0)
