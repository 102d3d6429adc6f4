"""Escalation: an approval nobody decided within its rule's `escalate_after` is escalated, once.

A rule with `escalate_after` and `escalate_to` (docs/policy.md, "Escalation") gives each approval
it parks an escalation time (`escalate_at`, fixed at park time by `queue.py`) and a target, an
`[escalation.<name>]` in airlock.toml. When that time comes and the approval is still pending,
the sweeper (`sweeper.py`, every replica) calls `Escalator.escalate_due`, which records
`escalated_at` with a compare-and-set and writes an `escalated` step to the audit log in the same
transaction. The ledger then tells the channels as for any change; each channel reads the target
from the approval and announces it (Slack: a notice in the target's channel and a line in the
approval's message; the webhook: an `approval.escalated` event).

Once, durably:
- the compare-and-set (`store/approvals.py::mark_escalated`: pending, not yet escalated, due, not
  expired) lets exactly one caller win, however many replicas sweep at once;
- the step is written in the winning transaction, so a crash either leaves nothing (and the next
  sweep escalates) or the whole escalation (and nobody escalates again);
- what the channels send is driven by the stored `escalated_at`, through their own durable
  outboxes, so a crash after the commit delays an announcement but never loses or repeats it.

What it does not do: decide, widen who may decide (a rule's `reviewers` still apply), or change
the expiry. On expiry an escalated approval expires like any other (`queue.py`); there is
deliberately no automatic approval (docs/policy.md says why).

Time is the ledger's `Clock`, so escalation is tested in virtual time (`tests/approvals/unit/`).
"""

from __future__ import annotations

import logging

from app.approvals.ledger import Ledger
from app.approvals.model import Approval
from app.approvals.wording import escalation_sentence
from app.store import approvals as approval_store

logger = logging.getLogger("airlock.approvals")

EVENT = "escalated"
"""The audit log's name for the step."""


class Escalator:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def escalate_due(self) -> list[str]:
        """Escalate every pending approval whose escalation time has come; returns those this call escalated."""
        now = self._ledger.clock.now()
        async with self._ledger.db.read() as conn:
            due = await approval_store.due_for_escalation(conn, now)
        return [approval_id for approval_id in due if await self.escalate(approval_id)]

    async def escalate(self, approval_id: str) -> bool:
        """Escalate one approval if it is still due; True only for the one caller that did."""
        now = self._ledger.clock.now()
        async with self._ledger.change() as change:
            if not await approval_store.mark_escalated(change.conn, approval_id, now):
                return False
            row = await approval_store.get(change.conn, approval_id)
            assert row is not None
            await self._ledger.audit.record_step(
                change.conn, event=EVENT, approval=row, now=now, detail=escalation_sentence(Approval.from_row(row))
            )
            change.touch(approval_id)
        logger.warning("approval %s: no decision in time; escalated to %s", approval_id, row.escalate_to)
        return True
