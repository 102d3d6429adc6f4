"""The approval lifecycle's rules, through the approvals service, in virtual time.

Provenance: Airlock-defined (docs/architecture.md: approval states; invariants 2 durable before
acknowledged, 3 at most once, 4 the stream belongs to its opener, 5 clients never wait past their
patience). Each test drives `Approvals` on the real store with a `FakeClock`: time moves only when
the test advances it, so "at the deadline and not before" is checked to the half second.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from app.approvals.decisions import AlreadyDecided
from app.approvals.model import Status
from app.approvals.outcomes import APPROVAL_META_KEY
from app.approvals.service import Outcome, Pending, Progress, Relayed, Replayed, Waiting
from app.protocol import Era
from tests.approvals.unit.conftest import REVIEWER, Lifecycle, Listener, bounded


def approval_meta(data: str) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads(data)["result"]["_meta"][APPROVAL_META_KEY]
    return meta


async def test_a_pending_approval_expires_at_its_deadline_and_not_before(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park()
    timeout = lifecycle.settings.timeout_seconds
    assert await lifecycle.approvals.sweep() == lifecycle.settings.safety_poll_seconds, "next pass: the safety poll"

    lifecycle.clock.advance(timeout - 0.5)
    delay = await lifecycle.approvals.sweep()
    assert (await lifecycle.approval(parked.approval.id)).status == "pending"
    assert delay == pytest.approx(0.5, abs=0.01), "the sweeper wakes for the deadline, not a poll later"

    lifecycle.clock.advance(0.5)
    await lifecycle.approvals.sweep()
    approval = await lifecycle.approval(parked.approval.id)
    assert (approval.status, approval.finished_at) == ("expired", lifecycle.clock.now())


async def test_a_decision_at_the_deadline_is_refused_even_before_the_sweeper_runs(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park()
    lifecycle.clock.advance(lifecycle.settings.timeout_seconds)
    with pytest.raises(AlreadyDecided):
        await lifecycle.approve(parked.approval.id)
    assert (await lifecycle.approval(parked.approval.id)).status == "pending", "expiring is the sweeper's step"


async def test_the_first_decision_wins_and_the_loser_learns_who_decided(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park()
    approvals = lifecycle.approvals
    outcomes = await asyncio.gather(
        approvals.decide(parked.approval.id, reviewer=REVIEWER, verdict="approve", via="api"),
        approvals.decide(parked.approval.id, reviewer="dave", verdict="reject", via="slack", reason="no"),
        return_exceptions=True,
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, AlreadyDecided)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert lost[0].approval.decided_by == won[0].decided_by
    assert (await lifecycle.approval(parked.approval.id)).status == won[0].status


async def test_a_hold_answers_pending_when_its_budget_runs_out_and_the_approval_stays_open(
    lifecycle: Lifecycle,
) -> None:
    clock = lifecycle.clock
    keepalive = lifecycle.settings.keepalive_seconds
    parked = await lifecycle.park(hold_seconds=keepalive + 5)
    listener = Listener(lifecycle.approvals.hold(parked, resumable=False))
    assert await listener.next() == Waiting(parked.approval.id, None)

    await bounded(clock.sleeping())
    clock.advance(keepalive - 0.5)
    assert listener.heard_nothing() and clock.sleepers == 1
    clock.advance(0.5)
    tick = await listener.next()
    assert isinstance(tick, Progress) and tick.elapsed == keepalive
    assert tick.message is not None and parked.approval.id in tick.message

    await bounded(clock.sleeping())
    clock.advance(4.5)
    assert listener.heard_nothing() and clock.sleepers == 1
    clock.advance(0.5)
    assert isinstance(await listener.next(), Progress), "the tick that found the budget spent"
    pending = await listener.next()
    assert isinstance(pending, Pending) and pending.seq is None, "a 2026-07-28 stream stores nothing"
    assert approval_meta(pending.data)["status"] == "pending"
    assert json.loads(pending.data)["id"] == 1
    await bounded(listener.task)
    assert (await lifecycle.approval(parked.approval.id)).status == "pending"


async def test_an_approved_call_runs_once_while_holders_and_sweepers_race_for_it(lifecycle: Lifecycle) -> None:
    approvals, upstream = lifecycle.approvals, lifecycle.upstream
    first = await lifecycle.park(request_id=1)
    second = await lifecycle.park(request_id=2)
    assert not second.created and second.approval.id == first.approval.id, "an identical call attaches"
    holders = [Listener(approvals.hold(a, resumable=False)) for a in (first, second)]
    for holder in holders:
        assert isinstance(await holder.next(), Waiting)

    await lifecycle.approve(first.approval.id)
    lifecycle.clock.advance(1.0)  # past the holders' head start: the sweepers want it too
    runs = [approvals.execute(first.approval.id) for _ in range(2)]
    await asyncio.gather(approvals.sweep(), lifecycle.sweeper().sweep(), lifecycle.sweeper().sweep())
    await bounded(upstream.entered.wait())
    upstream.release.set()

    answers = [await holder.next() for holder in holders]
    outcomes = [answer for answer in answers if isinstance(answer, Outcome)]
    assert len(outcomes) == 2
    assert [json.loads(outcome.data)["id"] for outcome in outcomes] == [1, 2]
    assert all(approval_meta(outcome.data)["status"] == "completed" for outcome in outcomes)
    assert sorted(await bounded(asyncio.gather(*runs))) in ([False, False], [False, True])
    await lifecycle.ledger.shutdown()
    assert upstream.calls == 1
    approval = await lifecycle.approval(first.approval.id)
    assert (approval.status, approval.delivered_at) == ("completed", lifecycle.clock.now())


async def test_a_lease_that_lapses_after_a_crash_becomes_outcome_unknown_and_is_never_sent_again(
    lifecycle: Lifecycle,
) -> None:
    approvals, upstream, clock = lifecycle.approvals, lifecycle.upstream, lifecycle.clock
    parked = await lifecycle.park()
    await lifecycle.approve(parked.approval.id)
    run = approvals.execute(parked.approval.id)
    await bounded(upstream.entered.wait())
    run.cancel()  # the process stops mid-call: the approval stays `executing` under its lease
    await asyncio.gather(run, return_exceptions=True)
    assert (await lifecycle.approval(parked.approval.id)).status == "executing"

    clock.advance(lifecycle.settings.execution_lease_seconds - 0.5)
    await approvals.sweep()
    assert (await lifecycle.approval(parked.approval.id)).status == "executing", "not before the lease lapses"

    clock.advance(1.0)
    await lifecycle.sweeper().sweep()
    approval = await lifecycle.approval(parked.approval.id)
    assert approval.status == "outcome_unknown"
    upstream.release.set()
    assert await bounded(approvals.execute(parked.approval.id)) is False
    await approvals.sweep()

    retry = await lifecycle.park(request_id=2)
    assert retry.approval.id == parked.approval.id, "the identical retry gets the outcome, not a new run"
    retried = Listener(approvals.hold(retry, resumable=False))
    assert isinstance(await retried.next(), Waiting)
    answer = await retried.next()
    assert isinstance(answer, Outcome) and approval_meta(answer.data)["status"] == "outcome_unknown"
    assert upstream.calls == 1


async def test_a_delivered_outcome_is_replayed_within_retention_and_a_new_call_after_it(
    lifecycle: Lifecycle,
) -> None:
    approvals, upstream, clock = lifecycle.approvals, lifecycle.upstream, lifecycle.clock
    upstream.release.set()
    parked = await lifecycle.park()
    await lifecycle.approve(parked.approval.id)
    holder = Listener(approvals.hold(parked, resumable=False))
    assert isinstance(await holder.next(), Waiting)
    delivered = await holder.next()
    assert isinstance(delivered, Outcome) and "replay" not in approval_meta(delivered.data)

    clock.advance(lifecycle.settings.result_retention_seconds - 0.5)
    again = await lifecycle.park(request_id=2)
    assert again.replayed and again.approval.id == parked.approval.id
    replaying = Listener(approvals.hold(again, resumable=False))
    assert isinstance(await replaying.next(), Waiting)
    replayed = await replaying.next()
    assert isinstance(replayed, Outcome) and approval_meta(replayed.data)["replay"] is True
    assert upstream.calls == 1

    clock.advance(1.0)
    later = await lifecycle.park(request_id=3)
    assert later.created and later.approval.id != parked.approval.id
    assert (await lifecycle.approval(later.approval.id)).status == "pending"


async def test_a_2026_client_that_leaves_withdraws_its_approval_after_the_grace_period(
    lifecycle: Lifecycle,
) -> None:
    approvals, clock = lifecycle.approvals, lifecycle.clock
    parked = await lifecycle.park()
    holder = Listener(approvals.hold(parked, resumable=False))
    assert isinstance(await holder.next(), Waiting)
    await holder.leave()
    withdrawal = holder.hold.abandon()
    assert withdrawal is not None

    await bounded(clock.sleeping())
    clock.advance(lifecycle.settings.cancel_grace_seconds - 0.5)
    assert clock.sleepers == 1 and (await lifecycle.approval(parked.approval.id)).status == "pending"
    clock.advance(0.5)
    await bounded(withdrawal)
    approval = await lifecycle.approval(parked.approval.id)
    assert (approval.status, approval.decided_by, approval.decided_via) == ("withdrawn", "agent-1", "client")


async def test_an_identical_retry_within_the_grace_period_keeps_the_approval(lifecycle: Lifecycle) -> None:
    approvals, clock = lifecycle.approvals, lifecycle.clock
    parked = await lifecycle.park()
    holder = Listener(approvals.hold(parked, resumable=False))
    assert isinstance(await holder.next(), Waiting)
    await holder.leave()
    withdrawal = holder.hold.abandon()
    assert withdrawal is not None
    await bounded(clock.sleeping())

    retry = await lifecycle.park(request_id=2)
    assert retry.approval.id == parked.approval.id
    clock.advance(lifecycle.settings.cancel_grace_seconds)
    await bounded(withdrawal)
    await approvals.sweep()
    assert (await lifecycle.approval(parked.approval.id)).status == "pending"


async def test_a_handshake_client_that_leaves_does_not_withdraw(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park(era=Era.HANDSHAKE, session_id="session-1")
    holder = Listener(lifecycle.approvals.hold(parked, resumable=True))
    assert isinstance(await holder.next(), Waiting)
    await holder.leave()
    assert holder.hold.abandon() is None


async def test_a_resumed_stream_replays_what_was_stored_and_only_to_its_opener(lifecycle: Lifecycle) -> None:
    approvals, clock = lifecycle.approvals, lifecycle.clock
    parked = await lifecycle.park(era=Era.HANDSHAKE, session_id="session-1", hold_seconds=5.0, priming=True)
    holder = Listener(approvals.hold(parked, resumable=True))
    assert await holder.next() == Waiting(parked.approval.id, 1)
    await bounded(clock.sleeping())
    clock.advance(5.0)
    assert isinstance(await holder.next(), Progress)
    pending = await holder.next()
    assert isinstance(pending, Pending) and pending.seq == 2

    stream = parked.stream.id
    assert await approvals.resume(stream, agent="agent-2", session_id="session-1") is None
    assert await approvals.resume(stream, agent="agent-1", session_id="session-2") is None
    assert await approvals.resume("no-such-stream", agent="agent-1", session_id="session-1") is None
    resumed = await approvals.resume(stream, agent="agent-1", session_id="session-1")
    assert resumed is not None
    replay = Listener(resumed, replay_after=0)
    assert await replay.next() == Replayed("", 1, answer=False)
    assert await replay.next() == Replayed(pending.data, 2, answer=True)
    await bounded(replay.task)
    assert replay.heard_nothing(), "the answer is the stream's last event"


async def test_upstream_messages_of_a_run_reach_its_holder_stored_and_before_the_outcome(
    lifecycle: Lifecycle,
) -> None:
    approvals, upstream = lifecycle.approvals, lifecycle.upstream
    progress = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 7, "progress": 1}}
    upstream.messages.append(progress)
    upstream.release.set()
    parked = await lifecycle.park(priming=True)
    await lifecycle.approve(parked.approval.id)
    holder = Listener(approvals.hold(parked, resumable=True))
    assert isinstance(await holder.next(), Waiting)
    relayed = await holder.next()
    outcome = await holder.next()
    assert isinstance(relayed, Relayed) and json.loads(relayed.data) == progress and relayed.seq == 2
    assert isinstance(outcome, Outcome) and outcome.seq == 3


async def test_watching_an_approval_follows_it_from_parked_to_its_outcome(lifecycle: Lifecycle) -> None:
    approvals = lifecycle.approvals
    parked = await lifecycle.park()
    seen: list[str] = []

    async def watch() -> None:
        async for approval in approvals.watch(parked.approval.id):
            seen.append(approval.status)
            if approval.status == "pending":
                lifecycle.upstream.release.set()
                await lifecycle.approve(parked.approval.id)
            elif approval.status == "approved":
                approvals.execute(approval.id)

    await bounded(watch())
    assert seen[0] == "pending" and seen[-1] == "completed", seen
    assert lifecycle.upstream.calls == 1


async def test_reviewers_read_typed_approvals_and_their_timeline_without_the_agents_call(lifecycle: Lifecycle) -> None:
    approvals = lifecycle.approvals
    parked = await lifecycle.park()
    other = await lifecycle.park(task="task-2", request_id=2)
    await lifecycle.approve(parked.approval.id)

    approved = await approvals.search(statuses=["approved"])
    assert [a.id for a in approved] == [parked.approval.id]
    assert approved[0].status is Status.APPROVED and approved[0].decided_by == REVIEWER
    assert {a.id for a in await approvals.search()} == {parked.approval.id, other.approval.id}
    assert set(await approvals.changed_since(0.0)) == {parked.approval.id, other.approval.id}
    steps = [step.event for step in await approvals.timeline(parked.approval.id)]
    assert steps[0] == "parked" and steps[-1] == "decided" and "call" not in steps
