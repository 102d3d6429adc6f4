"""Quorum rules (`approvals: N`): N distinct reviewers must approve, any one rejection rejects, and
the call runs once, when the Nth approval lands, under every race a single decision survives.

Provenance: Airlock-defined (issue 18, item 2). Driven through the approvals service on the real
store (SQLite, or PostgreSQL under `AIRLOCK_TEST_DATABASE=postgres`) in virtual time; the scripted
upstream counts every execution.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from app.approvals.decisions import AlreadyDecided
from app.approvals.model import Approval
from app.approvals.outcomes import APPROVAL_META_KEY
from app.approvals.service import Attachment, Outcome
from app.approvals.wording import confirmation, quorum_progress
from app.policy.engine import Decision
from app.store import tokens as token_store
from app.store import votes as vote_store
from tests.approvals.unit.conftest import REVIEWER, Lifecycle, Listener, bounded

TWO: Decision = Decision(action="approve", rule="rules[0]", rule_id="cancel", reason="irreversible", approvals=2)


async def add_reviewers(lifecycle: Lifecycle, *names: str) -> None:
    async with lifecycle.db.write() as conn:
        for name in names:
            await token_store.insert_reviewer(
                conn, name=name, token_hash=f"hash-{name}", slack_user_id=None, now=lifecycle.clock.now()
            )


async def vote(lifecycle: Lifecycle, approval_id: str, reviewer: str) -> Approval:
    return await lifecycle.approvals.decide(approval_id, reviewer=reviewer, verdict="approve", via="api")


async def park_needing(lifecycle: Lifecycle, approvals: int) -> Attachment:
    decision = Decision(action="approve", rule="rules[0]", rule_id="cancel", reason="irreversible", approvals=approvals)
    return await lifecycle.park(decision=decision)


async def test_one_approval_of_two_leaves_the_call_pending_and_says_how_far_it_got(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park(decision=TWO)
    first = await vote(lifecycle, parked.approval.id, REVIEWER)
    assert first.status == "pending" and first.votes == (REVIEWER,)
    assert quorum_progress(first) == "1 of 2 approvals, by carol"
    assert confirmation(first) == (
        f"You approved cancel_task for agent-1 ({first.id}): 1 of 2 approvals, by carol; "
        "it runs when 1 more reviewer approves."
    )
    assert lifecycle.upstream.calls == 0


async def test_the_second_distinct_approval_approves_and_the_call_runs_once(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park(decision=TWO)
    listener = Listener(lifecycle.approvals.hold(parked, resumable=False))
    await vote(lifecycle, parked.approval.id, REVIEWER)
    second = await vote(lifecycle, parked.approval.id, "dave")
    assert (second.status, second.decided_by, second.votes) == ("approved", "dave", (REVIEWER, "dave"))
    assert quorum_progress(second) == "2 of 2 approvals, by carol and dave"
    lifecycle.upstream.release.set()
    while not isinstance(event := await listener.next(), Outcome):
        pass
    assert json.loads(event.data)["result"]["_meta"][APPROVAL_META_KEY]["status"] == "completed"
    assert lifecycle.upstream.calls == 1


@pytest.mark.parametrize("spelling", ["carol", "CAROL"])
async def test_the_same_reviewer_approving_twice_counts_once(lifecycle: Lifecycle, spelling: str) -> None:
    parked = await lifecycle.park(decision=TWO)
    await vote(lifecycle, parked.approval.id, REVIEWER)
    async with lifecycle.db.write() as conn:  # a second spelling from before names were checked on creation
        await token_store.insert_reviewer(conn, name="CAROL", token_hash="h-upper", slack_user_id=None, now=0.0)
    again = await vote(lifecycle, parked.approval.id, spelling)
    assert (again.status, again.votes) == ("pending", (REVIEWER,))
    assert lifecycle.upstream.calls == 0


async def test_the_same_reviewer_approving_twice_at_once_counts_once(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park(decision=TWO)
    both = await asyncio.gather(*(vote(lifecycle, parked.approval.id, REVIEWER) for _ in range(2)))
    assert [a.status for a in both] == ["pending", "pending"]
    assert (await lifecycle.approval(parked.approval.id)).votes == (REVIEWER,)


async def test_a_rejection_after_one_approval_rejects_and_the_call_never_runs(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park(decision=TWO)
    await vote(lifecycle, parked.approval.id, REVIEWER)
    rejected = await lifecycle.approvals.decide(
        parked.approval.id, reviewer="dave", verdict="reject", via="slack", reason="not today"
    )
    assert (rejected.status, rejected.decided_by) == ("rejected", "dave")
    await add_reviewers(lifecycle, "erin")
    with pytest.raises(AlreadyDecided):
        await vote(lifecycle, parked.approval.id, "erin")
    await lifecycle.approvals.sweep()
    assert lifecycle.upstream.calls == 0


async def test_many_reviewers_approving_at_once_approve_exactly_once_with_exactly_n_votes(
    lifecycle: Lifecycle,
) -> None:
    names = ["r1", "r2", "r3", "r4", "r5", "r6"]
    await add_reviewers(lifecycle, *names)
    parked = await park_needing(lifecycle, 3)
    outcomes = await asyncio.gather(*(vote(lifecycle, parked.approval.id, n) for n in names), return_exceptions=True)
    statuses = sorted(o.status if isinstance(o, Approval) else type(o).__name__ for o in outcomes)
    assert statuses == ["AlreadyDecided"] * 3 + ["approved"] + ["pending"] * 2
    approval = await lifecycle.approval(parked.approval.id)
    async with lifecycle.db.read() as conn:
        assert sorted(await vote_store.voters(conn, parked.approval.id)) == sorted(approval.votes)
    assert len(approval.votes) == 3 and approval.decided_by == approval.votes[-1]


async def test_the_deciding_approval_racing_a_rejection_one_wins_and_the_other_is_told(
    lifecycle: Lifecycle,
) -> None:
    parked = await lifecycle.park(decision=TWO)
    await vote(lifecycle, parked.approval.id, REVIEWER)
    await add_reviewers(lifecycle, "erin")
    outcomes = await asyncio.gather(
        vote(lifecycle, parked.approval.id, "erin"),
        lifecycle.approvals.decide(parked.approval.id, reviewer="dave", verdict="reject", via="api", reason="no"),
        return_exceptions=True,
    )
    final = await lifecycle.approval(parked.approval.id)
    winners = [o for o in outcomes if isinstance(o, Approval)]
    assert len(winners) == 1 and sum(isinstance(o, AlreadyDecided) for o in outcomes) == 1, outcomes
    assert final.status == winners[0].status and final.status in ("approved", "rejected")
    if final.status == "rejected":
        assert final.votes == (REVIEWER,) and lifecycle.upstream.calls == 0
    else:
        assert final.votes == (REVIEWER, "erin")


async def test_the_last_vote_at_the_deadline_is_refused_and_the_call_expires_unrun(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park(decision=TWO)
    await vote(lifecycle, parked.approval.id, REVIEWER)
    lifecycle.clock.advance(lifecycle.settings.timeout_seconds)
    with pytest.raises(AlreadyDecided):
        await vote(lifecycle, parked.approval.id, "dave")
    await lifecycle.approvals.sweep()
    approval = await lifecycle.approval(parked.approval.id)
    assert (approval.status, approval.votes) == ("expired", (REVIEWER,))
    assert lifecycle.upstream.calls == 0


async def test_a_vote_after_the_agent_withdrew_is_refused_and_not_counted(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park(decision=TWO)
    await vote(lifecycle, parked.approval.id, REVIEWER)
    assert await lifecycle.approvals.withdraw(parked.approval.id, by="agent-1", reason="no longer needed")
    with pytest.raises(AlreadyDecided):
        await vote(lifecycle, parked.approval.id, "dave")
    approval = await lifecycle.approval(parked.approval.id)
    assert (approval.status, approval.votes) == ("withdrawn", (REVIEWER,))
    assert lifecycle.upstream.calls == 0


async def test_each_vote_wakes_the_held_request_which_keeps_waiting(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park(decision=TWO)
    watched = lifecycle.approvals.watch(parked.approval.id)
    assert (await bounded(anext(watched))).votes == ()
    await vote(lifecycle, parked.approval.id, REVIEWER)
    seen = await bounded(anext(watched))
    assert (seen.status, seen.votes) == ("pending", (REVIEWER,))
    await watched.aclose()


async def test_a_vote_is_a_step_of_the_approvals_timeline(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park(decision=TWO)
    await vote(lifecycle, parked.approval.id, REVIEWER)
    await vote(lifecycle, parked.approval.id, "dave")
    steps = [(s.event, s.actor, s.detail) for s in await lifecycle.approvals.timeline(parked.approval.id)]
    assert ("voted", REVIEWER, "via api: 1 of 2 approvals, by carol") in steps
    assert ("decided", "dave", "via api") in steps


async def test_the_deciding_vote_racing_the_agents_withdrawal_either_approves_or_is_refused_never_both(
    lifecycle: Lifecycle,
) -> None:
    parked = await lifecycle.park(decision=TWO)
    await vote(lifecycle, parked.approval.id, REVIEWER)
    voted, withdrawn = await asyncio.gather(
        vote(lifecycle, parked.approval.id, "dave"),
        lifecycle.approvals.withdraw(parked.approval.id, by="agent-1", reason="gone"),
        return_exceptions=True,
    )
    final = await lifecycle.approval(parked.approval.id)
    if withdrawn is True:
        assert isinstance(voted, AlreadyDecided) and (final.status, final.votes) == ("withdrawn", (REVIEWER,))
    else:
        assert withdrawn is False and isinstance(voted, Approval)
        assert (final.status, final.votes) == ("approved", (REVIEWER, "dave"))
