"""Escalation: an approval nobody decided within `escalate_after` is escalated once, durably.

Provenance: Airlock-defined (issue 18 item 3; docs/policy.md, "Escalation"). Each test drives the
approvals service and its sweeper on the real store with a `FakeClock`: "at `escalate_after` and
not before" is checked to the half second, and replicas and a crash mid-escalation are real
concurrent sweepers and a real rolled-back transaction.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.approvals.api import approval_json
from app.approvals.escalation import Escalator
from app.approvals.model import Approval, Status
from app.approvals.wording import iso
from app.policy.engine import Decision
from tests.approvals.unit.conftest import Lifecycle

TEN_MINUTES = 600.0
TIMEOUT = 1800.0


async def park(
    lifecycle: Lifecycle, *, escalate_after: float | None = TEN_MINUTES, timeout: float = TIMEOUT, task: str = "task-1"
) -> str:
    decision = Decision(
        action="approve",
        rule="rules[0]",
        rule_id="cancel",
        reason="irreversible",
        timeout=timeout,
        escalate_after=escalate_after,
        escalate_to="sre-oncall" if escalate_after is not None else None,
    )
    attachment = await lifecycle.park(task=task, decision=decision)
    return attachment.approval.id


async def escalation_steps(lifecycle: Lifecycle, approval_id: str) -> list[Any]:
    return [step for step in await lifecycle.approvals.timeline(approval_id) if step.event == "escalated"]


class RecordingChannel:
    name = "recording"

    def __init__(self) -> None:
        self.changes: asyncio.Queue[Approval] = asyncio.Queue()

    async def parked(self, approval: Approval) -> None:
        pass

    async def changed(self, approval: Approval) -> None:
        await self.changes.put(approval)


async def test_an_undecided_approval_is_escalated_at_escalate_after_and_not_before(lifecycle: Lifecycle) -> None:
    approval_id = await park(lifecycle)
    assert await lifecycle.approvals.sweep() == lifecycle.settings.safety_poll_seconds

    lifecycle.clock.advance(TEN_MINUTES - 0.5)
    delay = await lifecycle.approvals.sweep()
    assert (await lifecycle.approval(approval_id)).escalated_at is None
    assert delay == pytest.approx(0.5, abs=0.01), "the sweeper wakes for the escalation, not a poll later"

    lifecycle.clock.advance(0.5)
    await lifecycle.approvals.sweep()
    approval = await lifecycle.approval(approval_id)
    assert (approval.status, approval.escalated_at) == (Status.PENDING, lifecycle.clock.now())
    [step] = await escalation_steps(lifecycle, approval_id)
    assert step.detail == "Escalated to sre-oncall after 10 min."
    shown = approval_json(approval, "https://airlock.test")
    assert (shown["escalate_to"], shown["escalated_at"]) == ("sre-oncall", iso(lifecycle.clock.now()))


async def test_channels_are_told_of_the_escalation_after_it_committed(lifecycle: Lifecycle) -> None:
    channel = RecordingChannel()
    lifecycle.ledger.channels.channels.append(channel)
    approval_id = await park(lifecycle)
    lifecycle.clock.advance(TEN_MINUTES)
    await lifecycle.approvals.sweep()
    async with asyncio.timeout(5):
        told = await channel.changes.get()
    assert (told.id, told.escalated_at, told.escalate_to) == (approval_id, lifecycle.clock.now(), "sre-oncall")


async def test_an_approval_is_escalated_once_however_many_replicas_sweep(lifecycle: Lifecycle) -> None:
    approval_id = await park(lifecycle)
    lifecycle.clock.advance(TEN_MINUTES)
    replicas = [Escalator(lifecycle.ledger) for _ in range(4)]
    won = await asyncio.gather(*(replica.escalate_due() for replica in replicas))
    assert sorted(won) == [[], [], [], [approval_id]]

    lifecycle.clock.advance(60)
    await lifecycle.approvals.sweep()
    await lifecycle.sweeper().sweep()
    assert len(await escalation_steps(lifecycle, approval_id)) == 1
    assert (await lifecycle.approval(approval_id)).escalated_at == lifecycle.clock.now() - 60


async def test_a_crash_in_the_middle_of_an_escalation_leaves_it_to_the_next_sweep(
    lifecycle: Lifecycle, monkeypatch: pytest.MonkeyPatch
) -> None:
    approval_id = await park(lifecycle)
    lifecycle.clock.advance(TEN_MINUTES)
    audit = lifecycle.ledger.audit
    record_step = audit.record_step

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the process died after the compare-and-set, before the commit")

    monkeypatch.setattr(audit, "record_step", crash)
    with pytest.raises(RuntimeError):
        await Escalator(lifecycle.ledger).escalate_due()
    assert (await lifecycle.approval(approval_id)).escalated_at is None, "rolled back: not half escalated"

    monkeypatch.setattr(audit, "record_step", record_step)
    lifecycle.clock.advance(1)
    await lifecycle.approvals.sweep()
    assert (await lifecycle.approval(approval_id)).escalated_at == lifecycle.clock.now()
    assert len(await escalation_steps(lifecycle, approval_id)) == 1


async def test_an_approval_decided_before_escalate_after_is_never_escalated(lifecycle: Lifecycle) -> None:
    approval_id = await park(lifecycle)
    lifecycle.clock.advance(TEN_MINUTES - 1)
    await lifecycle.approve(approval_id)
    lifecycle.clock.advance(1)
    await lifecycle.approvals.sweep()
    assert (await lifecycle.approval(approval_id)).escalated_at is None
    assert await escalation_steps(lifecycle, approval_id) == []


async def test_an_escalated_approval_still_expires_at_its_timeout_and_never_runs(lifecycle: Lifecycle) -> None:
    approval_id = await park(lifecycle)
    lifecycle.clock.advance(TEN_MINUTES)
    await lifecycle.approvals.sweep()
    lifecycle.clock.advance(TIMEOUT - TEN_MINUTES)
    await lifecycle.approvals.sweep()
    approval = await lifecycle.approval(approval_id)
    assert approval.status is Status.EXPIRED and approval.escalated_at is not None
    assert lifecycle.upstream.calls == 0


async def test_an_escalation_due_at_or_after_the_timeout_is_never_scheduled(lifecycle: Lifecycle) -> None:
    approval_id = await park(lifecycle, escalate_after=TIMEOUT, timeout=TIMEOUT)
    approval = await lifecycle.approval(approval_id)
    assert (approval.escalate_at, approval.escalate_to) == (None, None)
    lifecycle.clock.advance(TIMEOUT)
    await lifecycle.approvals.sweep()
    assert await escalation_steps(lifecycle, approval_id) == []


async def test_a_rule_without_escalation_is_never_escalated(lifecycle: Lifecycle) -> None:
    approval_id = await park(lifecycle, escalate_after=None)
    lifecycle.clock.advance(TIMEOUT - 1)
    assert await lifecycle.approvals.sweep() == pytest.approx(1, abs=0.01), "only the expiry is scheduled"
    assert (await lifecycle.approval(approval_id)).escalate_at is None
