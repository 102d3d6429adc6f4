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
from collections.abc import Collection

from app.approvals.ledger import Ledger
from app.approvals.model import Approval
from app.approvals.wording import escalation_sentence
from app.errors import ConfigError
from app.policy.engine import CompiledPolicy
from app.policy.reloader import PolicyReloader
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


def unknown_targets(policy: CompiledPolicy, targets: Collection[str]) -> list[str]:
    """The `escalate_to` names in `policy` that are not among `targets`, in rule order."""
    named = (rule.decision.escalate_to for rule in policy.rules)
    return list(dict.fromkeys(name for name in named if name is not None and name not in targets))


def check_targets(policies: PolicyReloader, upstreams: Collection[str], targets: Collection[str]) -> None:
    """Refuse policies that escalate to targets airlock.toml does not define; watch reloads for them.

    An escalation to an unknown target would tell nobody. At startup that is a `ConfigError`; a
    reloaded policy is already in force when listeners hear of it, so then it is an error log line.

    Raises:
        ConfigError: a loaded policy names an unknown target (the first one found).
    """
    for upstream in upstreams:
        unknown = unknown_targets(policies.current(upstream), targets)
        if unknown:
            raise ConfigError(_unknown_sentence(upstream, unknown[0]))

    def reloaded(upstream: str, policy: CompiledPolicy) -> None:
        for name in unknown_targets(policy, targets):
            logger.error("%s; its approvals escalate without telling anyone", _unknown_sentence(upstream, name))

    policies.add_listener(reloaded)


def _unknown_sentence(upstream: str, name: str) -> str:
    return f"the policy for upstream {upstream!r} escalates to {name!r}, but airlock.toml has no [escalation.{name}]"
