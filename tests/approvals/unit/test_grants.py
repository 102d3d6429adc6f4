"""Scoped grants: a reviewer approves with "and allow identical calls (or this tool) from this agent
for N minutes"; the grant covers exactly that, until it expires or is revoked, and a grant the
rule does not permit refuses the whole decision.

Provenance: Airlock-defined (issue 18, item 4). Driven through the approvals service on the real
store (SQLite, or PostgreSQL under `AIRLOCK_TEST_DATABASE=postgres`) in virtual time.
"""

from __future__ import annotations

import asyncio

import pytest

from app.approvals.decisions import AlreadyDecided, GrantRefused
from app.approvals.grants import GrantAlreadyRevoked, GrantError, GrantRequest, minutes_of
from app.approvals.service import Attachment, Grant
from app.jsonrpc import arguments_hash
from app.policy.engine import Decision, GrantPolicy
from app.store import audit as audit_store
from tests.approvals.unit.conftest import AGENT, REVIEWER, UPSTREAM, Lifecycle

GRANTING = Decision(
    action="approve",
    rule="rules[0]",
    rule_id="cancel",
    reason="irreversible",
    grants=GrantPolicy(60, ("identical", "tool")),
)
IDENTICAL_ONLY = Decision(
    action="approve", rule="rules[0]", rule_id="cancel", reason="irreversible", grants=GrantPolicy(30)
)


def task_hash(task: str) -> str:
    return arguments_hash({"task_id": task})


async def approve_with(
    lifecycle: Lifecycle, parked: Attachment, grant: GrantRequest, reviewer: str = REVIEWER
) -> Grant:
    await lifecycle.approvals.decide(parked.approval.id, reviewer=reviewer, verdict="approve", via="api", grant=grant)
    given = await lifecycle.approvals.grants.of_approval(parked.approval.id)
    assert given is not None
    return given


async def covering(
    lifecycle: Lifecycle, *, task: str = "task-1", agent: str = AGENT, tool: str = "cancel_task", rule: str = "cancel"
) -> Grant | None:
    return await lifecycle.approvals.grants.covering(
        agent=agent, upstream=UPSTREAM, tool=tool, args_hash=task_hash(task), rule=rule
    )


async def test_an_identical_grant_covers_the_same_agents_identical_call_and_nothing_broader(
    lifecycle: Lifecycle,
) -> None:
    parked = await lifecycle.park(decision=GRANTING)
    grant = await approve_with(lifecycle, parked, GrantRequest(30, "identical"))
    assert (grant.agent, grant.upstream, grant.tool, grant.args_hash) == (
        AGENT,
        UPSTREAM,
        "cancel_task",
        parked.approval.args_hash,
    )
    assert grant.expires_at == lifecycle.clock.now() + 30 * 60 and grant.created_by == REVIEWER
    assert await covering(lifecycle) == grant
    assert await covering(lifecycle, task="task-2") is None
    assert await covering(lifecycle, agent="agent-2") is None
    assert await covering(lifecycle, tool="publish_task") is None


async def test_a_tool_grant_covers_any_arguments_of_that_tool_from_that_agent_only(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park(decision=GRANTING)
    grant = await approve_with(lifecycle, parked, GrantRequest(10, "tool"))
    assert grant.scope == "tool" and grant.args_hash is None
    assert await covering(lifecycle, task="task-2") == grant
    assert await covering(lifecycle, agent="agent-2") is None
    assert await covering(lifecycle, tool="publish_task") is None
    assert await covering(lifecycle, task="task-2", rule="rules[3]") is None, "another rule decided this call"


async def test_a_grant_ends_when_it_expires(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park(decision=GRANTING)
    await approve_with(lifecycle, parked, GrantRequest(5))
    lifecycle.clock.advance(5 * 60 - 1)
    assert await covering(lifecycle) is not None
    lifecycle.clock.advance(1)
    assert await covering(lifecycle) is None
    assert await lifecycle.approvals.grants.live() == []


async def test_a_revoked_grant_covers_nothing_and_a_replayed_revoke_changes_nothing(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park(decision=GRANTING)
    grant = await approve_with(lifecycle, parked, GrantRequest(30))
    revoked = await lifecycle.approvals.grants.revoke(grant.id, by="dave")
    assert revoked.revoked_by == "dave" and revoked.revoked_at == lifecycle.clock.now()
    assert await covering(lifecycle) is None
    lifecycle.clock.advance(1)
    with pytest.raises(GrantAlreadyRevoked, match=f"grant {grant.id} was already revoked by dave"):
        await lifecycle.approvals.grants.revoke(grant.id, by=REVIEWER)
    again = await lifecycle.approvals.grants.get(grant.id)
    assert again is not None and again.revoked_by == "dave" and again.revoked_at == revoked.revoked_at
    with pytest.raises(GrantError, match="no grant grt_made_up"):
        await lifecycle.approvals.grants.revoke("grt_made_up", by=REVIEWER)


async def test_two_revokes_at_once_revoke_once(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park(decision=GRANTING)
    grant = await approve_with(lifecycle, parked, GrantRequest(30))
    results = await asyncio.gather(
        lifecycle.approvals.grants.revoke(grant.id, by=REVIEWER),
        lifecycle.approvals.grants.revoke(grant.id, by="dave"),
        return_exceptions=True,
    )
    assert sum(isinstance(result, Grant) for result in results) == 1
    assert sum(isinstance(result, GrantAlreadyRevoked) for result in results) == 1


async def test_the_grant_and_its_revocation_are_on_the_approvals_timeline(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park(decision=GRANTING)
    grant = await approve_with(lifecycle, parked, GrantRequest(30))
    await lifecycle.approvals.grants.revoke(grant.id, by="dave")
    async with lifecycle.db.read() as conn:
        steps = await audit_store.search(conn, approval_id=parked.approval.id, newest_first=False, limit=100)
    details = {step.event: step.detail for step in steps}
    assert details["granted"] == f"with grant {grant.id}: identical calls for 30 min"
    assert details["grant_revoked"] == f"grant {grant.id} revoked by dave"


@pytest.mark.parametrize(
    ("decision", "grant", "refusal"),
    [
        (
            Decision(action="approve", rule="rules[0]", rule_id="cancel", reason=None),
            GrantRequest(10),
            "the policy rule for cancel_task (cancel) offers no grants; approve without one, or add `grants` to the rule",
        ),
        (
            IDENTICAL_ONLY,
            GrantRequest(10, "tool"),
            "the policy rule for cancel_task offers grants for identical calls only, not tool",
        ),
        (
            IDENTICAL_ONLY,
            GrantRequest(31),
            "the policy rule for cancel_task allows grants of at most 30 min, not 31 min",
        ),
        (IDENTICAL_ONLY, GrantRequest(0), "a grant lasts at least 1 minute"),
        (
            Decision(
                action="approve", rule="rules[0]", rule_id="cancel", reason=None, approvals=2, grants=GrantPolicy(60)
            ),
            GrantRequest(10),
            "the policy rule for cancel_task needs 2 approvals, so it offers no grants: a grant would let one "
            "reviewer's yes stand for calls that need several",
        ),
    ],
    ids=["rule-offers-none", "scope-not-offered", "too-long", "zero-minutes", "quorum-rule"],
)
async def test_a_grant_the_rule_does_not_permit_refuses_the_decision_with_the_reason(
    lifecycle: Lifecycle, decision: Decision, grant: GrantRequest, refusal: str
) -> None:
    parked = await lifecycle.park(decision=decision)
    with pytest.raises(GrantRefused) as refused:
        await lifecycle.approvals.decide(
            parked.approval.id, reviewer=REVIEWER, verdict="approve", via="api", grant=grant
        )
    assert str(refused.value) == refusal
    assert (await lifecycle.approval(parked.approval.id)).status == "pending"
    assert await lifecycle.approvals.grants.live() == []


async def test_a_grant_never_comes_with_a_rejection(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park(decision=GRANTING)
    with pytest.raises(GrantRefused, match="only with an approval"):
        await lifecycle.approvals.decide(
            parked.approval.id, reviewer=REVIEWER, verdict="reject", via="api", reason="no", grant=GrantRequest(10)
        )
    assert (await lifecycle.approval(parked.approval.id)).status == "pending"


async def test_two_reviewers_approving_with_grants_at_once_leave_one_approval_and_one_grant(
    lifecycle: Lifecycle,
) -> None:
    parked = await lifecycle.park(decision=GRANTING)
    results = await asyncio.gather(
        *(
            lifecycle.approvals.decide(parked.approval.id, reviewer=name, verdict="approve", via="api", grant=grant)
            for name, grant in ((REVIEWER, GrantRequest(10, "identical")), ("dave", GrantRequest(60, "tool")))
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(result, AlreadyDecided) for result in results) == 1
    live = await lifecycle.approvals.grants.live()
    assert len(live) == 1
    assert live[0].created_by == (await lifecycle.approval(parked.approval.id)).decided_by


async def test_a_late_approval_with_a_grant_grants_nothing(lifecycle: Lifecycle) -> None:
    parked = await lifecycle.park(decision=GRANTING)
    await lifecycle.approve(parked.approval.id)
    with pytest.raises(AlreadyDecided):
        await lifecycle.approvals.decide(
            parked.approval.id, reviewer="dave", verdict="approve", via="api", grant=GrantRequest(10)
        )
    assert await lifecycle.approvals.grants.live() == []


async def test_the_agents_retry_of_a_call_still_in_flight_is_not_covered_so_it_attaches(
    lifecycle: Lifecycle,
) -> None:
    parked = await lifecycle.park(decision=GRANTING)
    await approve_with(lifecycle, parked, GrantRequest(30))
    # Approved, not yet run or delivered: an identical call is the agent's retry of this one.
    covered = await lifecycle.approvals.covering_grant(
        agent=AGENT, upstream=UPSTREAM, tool="cancel_task", args_hash=task_hash("task-1"), rule="cancel"
    )
    assert covered is None
    other = await lifecycle.approvals.covering_grant(
        agent=AGENT, upstream=UPSTREAM, tool="cancel_task", args_hash=task_hash("task-2"), rule="cancel"
    )
    assert other is None  # identical scope: other arguments were never covered


@pytest.mark.parametrize(("text", "minutes"), [("30", 30), ("30m", 30), ("45min", 45), ("2h", 120), (" 1H ", 60)])
def test_grant_durations_read_as_minutes(text: str, minutes: int) -> None:
    assert minutes_of(text) == minutes


@pytest.mark.parametrize("text", ["", "m", "30s", "-5m", "1.5h", "30 minutes"])
def test_other_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration such as 30m or 2h"):
        minutes_of(text)
