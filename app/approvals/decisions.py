"""Deciding an approval: the one path the API, the CLI, Slack and the web inbox all call.

A decision is a compare-and-set on the pending row: the first one wins, and a later one learns
who decided and when. Channel code only authenticates the reviewer and renders the outcome.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from app.approvals.ledger import Ledger
from app.approvals.outcomes import iso
from app.store import approvals as approval_store
from app.store.approvals import ApprovalRow, Status

Verdict = Literal["approve", "reject"]
Via = Literal["api", "cli", "slack", "inbox"]


class DecisionError(Exception):
    """A decision that was not taken, and why (one sentence for the reviewer)."""

    status_code = 400


class ApprovalNotFound(DecisionError):
    status_code = 404


class NotAllowed(DecisionError):
    """The reviewer may not decide this call (their own call, or not on the rule's reviewer list)."""

    status_code = 403


@dataclass
class AlreadyDecided(DecisionError):
    approval: ApprovalRow
    status_code = 409

    def __str__(self) -> str:
        a = self.approval
        if a.status in ("pending", "expired"):
            return f"approval {a.id} expired at {iso(a.expires_at)} before anyone decided"
        if a.status == "withdrawn":
            return f"approval {a.id} was withdrawn by {a.decided_by} at {iso(a.decided_at)}"
        verb = "rejected" if a.status == "rejected" else "approved"
        return f"approval {a.id} was already {verb} by {a.decided_by} at {iso(a.decided_at)} (now {a.status})"


async def decide(ledger: Ledger, approval_id: str, *, reviewer: str, verdict: Verdict, via: Via,
                 reason: str | None = None) -> ApprovalRow:
    """Approve or reject a pending approval as `reviewer`; returns the approval after the decision.

    Raises:
        ApprovalNotFound: no such approval.
        NotAllowed: `reviewer` is the agent that made the call (approving one's own call is
            refused), or the matching rule names other reviewers.
        AlreadyDecided: someone decided first, or it expired or was withdrawn (HTTP 409).
    """
    now = time.time()
    reason = (reason or "").strip()[:2000] or None
    async with ledger.change() as change:
        row = await approval_store.get(change.conn, approval_id)
        if row is None:
            raise ApprovalNotFound(f"no approval {approval_id}")
        _check_reviewer(row, reviewer, verdict)
        status: Status = "approved" if verdict == "approve" else "rejected"
        decided = await change.move(
            approval_id, expected="pending", to=status, now=now, event="decided", actor=reviewer,
            audit_outcome=status, audit_detail=f"via {via}" + (f": {reason}" if reason else ""),
            where=[approval_store.not_expired(now)],
            decided_by=reviewer, decided_via=via, decided_at=now, decision_reason=reason,
            finished_at=None if verdict == "approve" else now)
        if decided is None:
            current = await approval_store.get(change.conn, approval_id)
            assert current is not None
            raise AlreadyDecided(current)
    return decided


def _check_reviewer(row: ApprovalRow, reviewer: str, verdict: Verdict) -> None:
    if verdict == "approve" and reviewer == row.agent:
        raise NotAllowed(f"{reviewer} made this call and cannot approve it; another reviewer must")
    allowed = row.allowed_reviewers
    if allowed is not None and reviewer not in allowed:
        raise NotAllowed(f"the policy rule for {row.tool} lets only {', '.join(allowed)} decide")
