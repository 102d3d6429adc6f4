"""Deciding an approval: the one path the API, the CLI, Slack and the web inbox all take, through
the approvals service (`Approvals.decide`, `app/approvals/service.py`).

A decision is a compare-and-set on the pending row: the first one wins, and a later one learns
who decided and when. Channel code only authenticates the reviewer and renders the outcome.

Every rule about a decision lives here, once, and is checked at the moment of deciding (inside the
transaction that decides), so no channel can skip one:

- the decider is a reviewer in the reviewers table, and enabled now: a reviewer disabled after
  they signed in, or a name a channel maps to (`SLACK_REVIEWERS`, the CLI's `--as`) that no
  reviewer holds, decides nothing; agent tokens never reach here (they are not reviewers);
- nobody approves a call made under their own identity, and a rule's `reviewers` list is honoured,
  both compared as identities (`app/identity.py`: NFKC + case folding, so `RT-Agent` is
  `rt-agent`);
- a rejection needs a reason: the agent is told who rejected its call and why.

`refusal` runs the same checks without deciding, for a channel that must ask something first
(Slack opens the reason form only when the clicker could submit it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from app.approvals.ledger import Ledger
from app.approvals.model import Approval
from app.approvals.wording import already_decided
from app.identity import same_identity
from app.reveal import reveal
from app.store import approvals as approval_store
from app.store import tokens as token_store
from app.store.approvals import Status

Verdict = Literal["approve", "reject"]
Via = Literal["api", "cli", "slack", "inbox", "webhook"]

REASON_MAX_LENGTH: Final = 2000


class DecisionError(Exception):
    """A decision that was not taken, and why (one sentence for the reviewer)."""

    status_code = 400

    def sentence(self) -> str:
        """The reason as a sentence on its own (capitalised, with a full stop), for Slack and the inbox;
        the API and the CLI show `str(exc)` inside their own framing."""
        text = str(self)
        return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


class ApprovalNotFound(DecisionError):
    status_code = 404


class NotAllowed(DecisionError):
    """The reviewer may not decide this call (not an enabled reviewer, their own call, or not on the
    rule's reviewer list)."""

    status_code = 403


class ReasonRequired(DecisionError):
    """A rejection without a reason."""


@dataclass
class AlreadyDecided(DecisionError):
    approval: Approval
    status_code = 409

    def __str__(self) -> str:
        return already_decided(self.approval)


async def decide(
    ledger: Ledger, approval_id: str, *, reviewer: str, verdict: Verdict, via: Via, reason: str | None = None
) -> Approval:
    """Approve or reject a pending approval as `reviewer`; returns the approval after the decision.

    Raises:
        ApprovalNotFound: no such approval.
        NotAllowed: `reviewer` is no enabled reviewer, is the agent that made the call (approving
            one's own call is refused), or the matching rule names other reviewers.
        ReasonRequired: a rejection without a reason.
        AlreadyDecided: someone decided first, or it expired or was withdrawn (HTTP 409).
    """
    now = ledger.clock.now()
    reason = (reason or "").strip()[:REASON_MAX_LENGTH] or None
    async with ledger.change() as change:
        row = await approval_store.get(change.conn, approval_id)
        if row is None:
            raise ApprovalNotFound(f"no approval {reveal(approval_id, line=True)}")
        await _check_reviewer(change.conn, Approval.from_row(row), reviewer, verdict)
        if verdict == "reject" and reason is None:
            if row.status != "pending" or row.expires_at <= now:
                raise AlreadyDecided(Approval.from_row(row))  # the more useful answer: no reason would have helped
            raise ReasonRequired("a rejection needs a reason: the agent is told who rejected its call and why")
        status: Status = "approved" if verdict == "approve" else "rejected"
        decided = await change.move(
            approval_id,
            expected="pending",
            to=status,
            now=now,
            event="decided",
            actor=reviewer,
            audit_outcome=status,
            audit_detail=f"via {via}" + (f": {reason}" if reason else ""),
            where=[approval_store.not_expired(now)],
            decided_by=reviewer,
            decided_via=via,
            decided_at=now,
            decision_reason=reason,
            finished_at=None if verdict == "approve" else now,
        )
        if decided is None:
            current = await approval_store.get(change.conn, approval_id)
            assert current is not None
            raise AlreadyDecided(Approval.from_row(current))
    return Approval.from_row(decided)


async def refusal(ledger: Ledger, approval: Approval, *, reviewer: str, verdict: Verdict) -> DecisionError | None:
    """Why `reviewer` could not decide `approval` now (every rule but the reason), or None.

    Deciding still checks everything again; this only spares a reviewer a form they cannot submit.
    """
    if approval.status != "pending" or approval.expires_at <= ledger.clock.now():
        return AlreadyDecided(approval)
    try:
        async with ledger.db.read() as conn:
            await _check_reviewer(conn, approval, reviewer, verdict)
    except DecisionError as exc:
        return exc
    return None


async def _check_reviewer(conn: AsyncConnection, row: Approval, reviewer: str, verdict: Verdict) -> None:
    known = await token_store.reviewer_named(conn, reviewer)
    if known is None:
        raise NotAllowed(
            f"{_name(reviewer)} is not an Airlock reviewer, so cannot decide; an admin can add them "
            f"with `airlock reviewers add {_name(reviewer)}`"
        )
    if known.disabled_at is not None:
        raise NotAllowed(
            f"reviewer {_name(reviewer)} is disabled and cannot decide; an admin can run "
            f"`airlock reviewers enable {_name(reviewer)}`"
        )
    if verdict == "approve" and same_identity(reviewer, row.agent):
        maker = "" if reviewer == row.agent else f" (as agent {_name(row.agent)}, the same identity)"
        raise NotAllowed(f"{_name(reviewer)} made this call{maker} and cannot approve it; another reviewer must")
    allowed = row.reviewers
    if allowed is not None and not any(same_identity(reviewer, name) for name in allowed):
        raise NotAllowed(f"the policy rule for {_name(row.tool)} lets only {', '.join(map(_name, allowed))} decide")


def _name(name: str | None) -> str:
    """A name inside a sentence: hidden characters revealed, as everywhere a reviewer reads one."""
    return reveal(name or "someone", line=True)
