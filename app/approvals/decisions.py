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
- a rejection needs a reason: the agent is told who rejected its call and why;
- a quorum rule (`approvals: N`) needs N distinct reviewers: each approval is a vote
  (`approval_votes`, one per reviewer identity, so the same reviewer twice counts once), any one
  rejection rejects, and the call is approved (and so runs) only by the vote that makes N.

Votes and the approval move in one transaction, after a compare-and-set on the approval's row
that both checks it is still pending and unexpired and (on PostgreSQL) locks it: concurrent votes
from any replica, a rejection, an expiry or a withdrawal are applied one after another, so exactly
one vote sees the quorum reached, and none counts after the approval left `pending`.

`refusal` runs the same checks without deciding, for a channel that must ask something first
(Slack opens the reason form only when the clicker could submit it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from app.approvals import grants
from app.approvals.grants import GrantRequest
from app.approvals.ledger import Change, Ledger
from app.approvals.model import Approval
from app.approvals.wording import already_decided, quorum_progress
from app.identity import identity_key, same_identity
from app.reveal import reveal
from app.store import approvals as approval_store
from app.store import tokens as token_store
from app.store import votes as vote_store
from app.store.approvals import ApprovalRow, Status

Verdict = Literal["approve", "reject"]
Via = Literal["api", "cli", "slack", "inbox", "webhook"]

REASON_MAX_LENGTH: Final = 2000

ReviewerGroups = Mapping[str, frozenset[str]]
"""Each reviewer's groups, by identity key (`app/identity.py`), for a rule's `reviewer_groups`."""
NO_GROUPS: Final[ReviewerGroups] = {}


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


class GrantRefused(DecisionError):
    """A grant the approval's rule does not permit (`grants.py`): nothing was decided."""


@dataclass
class AlreadyDecided(DecisionError):
    approval: Approval
    status_code = 409

    def __str__(self) -> str:
        return already_decided(self.approval)


async def decide(
    ledger: Ledger,
    approval_id: str,
    *,
    reviewer: str,
    verdict: Verdict,
    via: Via,
    reason: str | None = None,
    groups: ReviewerGroups = NO_GROUPS,
    grant: GrantRequest | None = None,
) -> Approval:
    """Approve or reject a pending approval as `reviewer`; returns the approval after the decision.

    Under a quorum rule an approval that is not the Nth returns the approval still `pending`, with
    the vote in `votes` (the same reviewer again changes nothing).

    Args:
        groups: each reviewer's groups, for a rule's `reviewer_groups`.
        grant: a scoped grant to give with the approval (`grants.py`), written in the same
            transaction, so it exists exactly when the approval was committed.

    Raises:
        ApprovalNotFound: no such approval.
        NotAllowed: `reviewer` is no enabled reviewer, is the agent that made the call (approving
            one's own call is refused), or the matching rule names other reviewers or groups.
        ReasonRequired: a rejection without a reason.
        AlreadyDecided: someone decided first, or it expired or was withdrawn (HTTP 409).
        GrantRefused: `grant` with a rejection, or one the rule does not permit.
    """
    now = ledger.clock.now()
    reason = (reason or "").strip()[:REASON_MAX_LENGTH] or None
    async with ledger.change() as change:
        row = await approval_store.get(change.conn, approval_id)
        if row is None:
            raise ApprovalNotFound(f"no approval {reveal(approval_id, line=True)}")
        await _check_reviewer(change.conn, Approval.from_row(row), reviewer, verdict, groups)
        if verdict == "reject" and reason is None:
            if row.status != "pending" or row.expires_at <= now:
                raise AlreadyDecided(Approval.from_row(row))  # the more useful answer: no reason would have helped
            raise ReasonRequired("a rejection needs a reason: the agent is told who rejected its call and why")
        if grant is not None:
            _check_grant(Approval.from_row(row), verdict, grant)
        if verdict == "approve":
            decided = await _approve(change, approval_id, reviewer=reviewer, via=via, reason=reason, now=now)
        else:
            decided = await _settle(change, approval_id, "rejected", reviewer=reviewer, via=via, reason=reason, now=now)
        if decided is None:
            current = await approval_store.get(change.conn, approval_id)
            assert current is not None
            raise AlreadyDecided(Approval.from_row(current))
        if grant is not None and decided.status == "approved":
            await grants.create(change, decided, grant, reviewer=reviewer, now=now)
    return Approval.from_row(decided)


def _check_grant(approval: Approval, verdict: Verdict, grant: GrantRequest) -> None:
    problem = grants.rejection_refusal() if verdict == "reject" else grants.refusal(approval, grant)
    if problem is not None:
        raise GrantRefused(problem)


async def _approve(
    change: Change, approval_id: str, *, reviewer: str, via: Via, reason: str | None, now: float
) -> ApprovalRow | None:
    """Count `reviewer`'s vote; approve when it makes the quorum. None: no longer pending."""
    # The guard comes first: it takes the row (PostgreSQL locks it until commit; SQLite has one
    # writer), so the votes counted below include every vote committed before this one.
    if not await approval_store.transition(
        change.conn, approval_id, expected="pending", to="pending", now=now, where=[approval_store.not_expired(now)]
    ):
        return None
    counted = await vote_store.record(change.conn, approval_id, reviewer=reviewer, via=via, now=now)
    row = await approval_store.get(change.conn, approval_id)
    assert row is not None
    # The row's `votes` keeps the order votes landed in (the table's times can tie).
    current = Approval.from_row(row)
    voters = list(current.votes) + ([reviewer] if counted else [])
    if len(voters) >= row.quorum:
        return await _settle(
            change, approval_id, "approved", reviewer=reviewer, via=via, reason=reason, now=now, votes=voters
        )
    if not counted:
        return row
    return await change.move(
        approval_id,
        expected="pending",
        to="pending",
        now=now,
        event="voted",
        actor=reviewer,
        audit_outcome="approved",
        audit_detail=f"via {via}: {quorum_progress(replace(current, votes=tuple(voters)))}",
        votes=json.dumps(voters),
    )


async def _settle(
    change: Change,
    approval_id: str,
    status: Status,
    *,
    reviewer: str,
    via: Via,
    reason: str | None,
    now: float,
    votes: list[str] | None = None,
) -> ApprovalRow | None:
    """Move a pending approval to `status` as `reviewer`'s decision; None when it was not pending."""
    return await change.move(
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
        finished_at=None if status == "approved" else now,
        **({} if votes is None else {"votes": json.dumps(votes)}),
    )


async def refusal(
    ledger: Ledger, approval: Approval, *, reviewer: str, verdict: Verdict, groups: ReviewerGroups = NO_GROUPS
) -> DecisionError | None:
    """Why `reviewer` could not decide `approval` now (every rule but the reason), or None.

    Deciding still checks everything again; this only spares a reviewer a form they cannot submit.
    """
    if approval.status != "pending" or approval.expires_at <= ledger.clock.now():
        return AlreadyDecided(approval)
    try:
        async with ledger.db.read() as conn:
            await _check_reviewer(conn, approval, reviewer, verdict, groups)
    except DecisionError as exc:
        return exc
    return None


async def _check_reviewer(
    conn: AsyncConnection, row: Approval, reviewer: str, verdict: Verdict, groups: ReviewerGroups
) -> None:
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
    if not _eligible(row, reviewer, groups):
        raise NotAllowed(f"the policy rule for {_name(row.tool)} lets only {_who_may(row)} decide")


def _eligible(row: Approval, reviewer: str, groups: ReviewerGroups) -> bool:
    """The rule lets `reviewer` decide: it names nobody, names them, or names a group of theirs."""
    if row.reviewers is None and row.reviewer_groups is None:
        return True
    if any(same_identity(reviewer, name) for name in row.reviewers or ()):
        return True
    return not groups.get(identity_key(reviewer), frozenset()).isdisjoint(row.reviewer_groups or ())


def _who_may(row: Approval) -> str:
    names = [_name(name) for name in row.reviewers or ()]
    names += [f"members of {_name(group)}" for group in row.reviewer_groups or ()]
    return ", ".join(names) if names else "nobody (the stored reviewer list does not decode)"


def _name(name: str | None) -> str:
    """A name inside a sentence: hidden characters revealed, as everywhere a reviewer reads one."""
    return reveal(name or "someone", line=True)
