"""Queries for approvals. Every state change is one conditional UPDATE; its row count says who won.

    pending ──▶ approved ──▶ executing ──▶ completed | failed | outcome_unknown
    pending ──▶ rejected | expired | withdrawn

`transition()` is the only function that moves `status`. Callers own the transaction; nothing here
commits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Final, Literal

from sqlalchemy import Row, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.models import approval_votes, approvals, slack_outbox, streams, webhook_outbox

Status = Literal[
    "pending", "approved", "executing", "completed", "failed", "outcome_unknown", "rejected", "expired", "withdrawn"
]

OPEN: Final[tuple[Status, ...]] = ("pending", "approved", "executing")
"""Statuses in which the outcome is still to come."""
FINISHED: Final[tuple[Status, ...]] = ("completed", "failed", "outcome_unknown", "rejected", "expired", "withdrawn")
"""Statuses that will never change again."""
ALL_STATUSES: Final[tuple[Status, ...]] = OPEN + FINISHED


@dataclass(frozen=True, slots=True)
class ApprovalRow:
    id: str
    upstream: str
    tool: str
    agent: str
    arguments: str
    args_hash: str
    params: str
    forward_headers: str
    era: str
    protocol_version: str
    session_id: str | None
    request_id: str
    progress_token: str | None
    policy_rule: str
    policy_reason: str | None
    policy_version: str
    reviewers: str | None
    routing: str | None
    status: str
    created_at: float
    expires_at: float
    updated_at: float
    attach_seq: int
    decided_by: str | None
    decided_via: str | None
    decided_at: float | None
    decision_reason: str | None
    executor: str | None
    lease_until: float | None
    executed_at: float | None
    finished_at: float | None
    result: str | None
    outcome: str | None
    delivered_at: float | None
    continues: str | None = None
    """The approval whose `input_required` round this one continues (2026-07-28), if any."""
    withdraw_at: float | None = None
    """When a 2026-07-28 client's closed stream withdraws it, unless attached again since `withdraw_seq`."""
    withdraw_seq: int | None = None
    quorum: int = 1
    """How many distinct reviewers must approve (the rule's `approvals`)."""
    reviewer_groups: str | None = None
    """The rule's `reviewer_groups` as JSON, or NULL."""
    votes: str | None = None
    """JSON list of the reviewers who approved so far, in order (`approval_votes` holds the votes)."""
    escalate_at: float | None = None
    """When a still pending approval is escalated to `escalate_to` (None: its rule does not escalate)."""
    escalate_to: str | None = None
    escalated_at: float | None = None
    """When it was escalated (set once, by `mark_escalated`)."""
    grant_policy: str | None = None
    """The rule's `grants` as JSON, or NULL: the rule offers no grants."""

    @property
    def allowed_reviewers(self) -> tuple[str, ...] | None:
        return None if self.reviewers is None else tuple(json.loads(self.reviewers))

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED


_COLUMNS = [approvals.c[f.name] for f in fields(ApprovalRow)]


def _row(row: Row[Any]) -> ApprovalRow:
    return ApprovalRow(**row._mapping)


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(approvals.insert().values(**values))


async def get(conn: AsyncConnection, approval_id: str) -> ApprovalRow | None:
    row = (await conn.execute(select(*_COLUMNS).where(approvals.c.id == approval_id))).first()
    return None if row is None else _row(row)


async def find_attachable(
    conn: AsyncConnection, *, agent: str, upstream: str, tool: str, args_hash: str, now: float, retention: float
) -> ApprovalRow | None:
    """The approval an identical call by the same agent re-attaches to, if any.

    That is the newest one still open, or finished but not yet delivered to the agent (within the
    retention window). A delivered outcome is not attached to; `find_replayable` finds those.
    """
    undelivered = and_(
        approvals.c.status.in_(FINISHED), approvals.c.delivered_at.is_(None), approvals.c.updated_at > now - retention
    )
    row = (
        await conn.execute(
            select(*_COLUMNS)
            .where(
                approvals.c.agent == agent,
                approvals.c.upstream == upstream,
                approvals.c.tool == tool,
                approvals.c.args_hash == args_hash,
                or_(approvals.c.status.in_(OPEN), undelivered),
            )
            .order_by(approvals.c.created_at.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else _row(row)


def ran() -> Condition:
    """Finished in a way that means the upstream received the call and answered (or may have run it).

    `completed` (a result, a tool error, or a result too large to relay), `outcome_unknown`, and
    `failed` with a stored upstream error. `failed` without a stored result is Airlock's "it did
    not run" (unreachable upstream, unknown session, HTTP 4xx); rejected, expired and withdrawn
    never ran either.
    """
    return or_(
        approvals.c.status.in_(("completed", "outcome_unknown")),
        and_(approvals.c.status == "failed", approvals.c.result.is_not(None)),
    )


async def find_replayable(
    conn: AsyncConnection, *, agent: str, upstream: str, tool: str, args_hash: str, since: float, limit: int = 20
) -> list[ApprovalRow]:
    """Delivered outcomes of identical calls that ran and finished after `since`, newest first.

    An identical call gets one of these again, marked as a replay, instead of a new approval (see
    `app/approvals/queue.py`): a delivered outcome may have been lost on the way to the agent.
    """
    rows = await conn.execute(
        select(*_COLUMNS)
        .where(
            approvals.c.agent == agent,
            approvals.c.upstream == upstream,
            approvals.c.tool == tool,
            approvals.c.args_hash == args_hash,
            approvals.c.delivered_at.is_not(None),
            ran(),
            approvals.c.finished_at > since,
        )
        .order_by(approvals.c.created_at.desc())
        .limit(limit)
    )
    return [_row(row) for row in rows]


async def find_continuable(
    conn: AsyncConnection, *, agent: str, upstream: str, tool: str, args_hash: str, since: float
) -> ApprovalRow | None:
    """The newest completed, not yet continued approval of this call (see `app/approvals/continuation.py`)."""
    successor = approvals.alias("successor")
    continued = select(successor.c.id).where(successor.c.continues == approvals.c.id).exists()
    row = (
        await conn.execute(
            select(*_COLUMNS)
            .where(
                approvals.c.agent == agent,
                approvals.c.upstream == upstream,
                approvals.c.tool == tool,
                approvals.c.args_hash == args_hash,
                approvals.c.status == "completed",
                approvals.c.updated_at > since,
                ~continued,
            )
            .order_by(approvals.c.created_at.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else _row(row)


async def count_pending(conn: AsyncConnection, agent: str) -> int:
    result = await conn.execute(
        select(func.count()).select_from(approvals).where(approvals.c.agent == agent, approvals.c.status == "pending")
    )
    return int(result.scalar_one())


Condition = Any
"""An extra WHERE condition for `transition`, built by one of the functions below."""


def not_expired(now: float) -> Condition:
    return approvals.c.expires_at > now


def expired(now: float) -> Condition:
    return approvals.c.expires_at <= now


def attach_seq_is(seq: int) -> Condition:
    return approvals.c.attach_seq == seq


def executed_by(executor: str) -> Condition:
    return approvals.c.executor == executor


def lease_lapsed(now: float) -> Condition:
    return approvals.c.lease_until < now


async def transition(
    conn: AsyncConnection,
    approval_id: str,
    *,
    expected: Status | Sequence[Status],
    to: Status,
    now: float,
    where: Sequence[Condition] = (),
    **values: Any,
) -> bool:
    """Move one approval from `expected` to `to`, setting `values`; True when this call won.

    The UPDATE's WHERE clause carries the expected status (and any extra `where` conditions), so of
    several concurrent callers exactly one sees a row count of 1.
    """
    statuses = [expected] if isinstance(expected, str) else list(expected)
    result = await conn.execute(
        update(approvals)
        .where(approvals.c.id == approval_id, approvals.c.status.in_(statuses), *where)
        .values(status=to, updated_at=now, **values)
    )
    return result.rowcount == 1


async def bump_attach(conn: AsyncConnection, approval_id: str, now: float) -> int:
    """Record that a request (re-)attached; returns the new attach sequence number."""
    # A new attachment also calls off a withdrawal a closed 2026-07-28 stream had scheduled.
    await conn.execute(
        update(approvals)
        .where(approvals.c.id == approval_id)
        .values(attach_seq=approvals.c.attach_seq + 1, withdraw_at=None, withdraw_seq=None)
    )
    result = await conn.execute(select(approvals.c.attach_seq).where(approvals.c.id == approval_id))
    return int(result.scalar_one())


async def schedule_withdrawal(conn: AsyncConnection, approval_id: str, *, attach_seq: int, at: float) -> bool:
    """Record that the pending approval is withdrawn at `at` unless attached again after `attach_seq`."""
    result = await conn.execute(
        update(approvals)
        .where(approvals.c.id == approval_id, approvals.c.status == "pending", approvals.c.attach_seq == attach_seq)
        .values(withdraw_at=at, withdraw_seq=attach_seq)
    )
    return result.rowcount == 1


async def due_withdrawals(conn: AsyncConnection, now: float, limit: int = 500) -> list[tuple[str, str, int]]:
    """`(id, agent, attach seq)` of pending approvals whose scheduled withdrawal is due."""
    rows = await conn.execute(
        select(approvals.c.id, approvals.c.agent, approvals.c.withdraw_seq)
        .where(_withdrawal_scheduled(), approvals.c.withdraw_at <= now)
        .limit(limit)
    )
    return [(str(r.id), str(r.agent), int(r.withdraw_seq)) for r in rows]


async def next_withdrawal(conn: AsyncConnection) -> float | None:
    result = await conn.execute(select(func.min(approvals.c.withdraw_at)).where(_withdrawal_scheduled()))
    value = result.scalar_one_or_none()
    return None if value is None else float(value)


def _withdrawal_scheduled() -> Condition:
    # The sequence check keeps a withdrawal that can no longer happen from being due forever.
    return and_(
        approvals.c.status == "pending",
        approvals.c.withdraw_at.is_not(None),
        approvals.c.withdraw_seq == approvals.c.attach_seq,
    )


async def mark_delivered(conn: AsyncConnection, approval_id: str, now: float) -> bool:
    result = await conn.execute(
        update(approvals)
        .where(approvals.c.id == approval_id, approvals.c.status.in_(FINISHED), approvals.c.delivered_at.is_(None))
        .values(delivered_at=now)
    )
    return result.rowcount == 1


async def renew_lease(conn: AsyncConnection, approval_id: str, executor: str, lease_until: float) -> bool:
    result = await conn.execute(
        update(approvals)
        .where(approvals.c.id == approval_id, approvals.c.status == "executing", approvals.c.executor == executor)
        .values(lease_until=lease_until)
    )
    return result.rowcount == 1


async def due_for_expiry(conn: AsyncConnection, now: float, limit: int = 500) -> list[str]:
    rows = await conn.execute(
        select(approvals.c.id).where(approvals.c.status == "pending", approvals.c.expires_at <= now).limit(limit)
    )
    return [str(r.id) for r in rows]


async def next_expiry(conn: AsyncConnection) -> float | None:
    result = await conn.execute(select(func.min(approvals.c.expires_at)).where(approvals.c.status == "pending"))
    value = result.scalar_one_or_none()
    return None if value is None else float(value)


def _escalation_due() -> Condition:
    return and_(
        approvals.c.status == "pending", approvals.c.escalate_at.is_not(None), approvals.c.escalated_at.is_(None)
    )


async def due_for_escalation(conn: AsyncConnection, now: float, limit: int = 500) -> list[str]:
    """Pending approvals whose escalation time has come and that nobody escalated yet."""
    rows = await conn.execute(
        select(approvals.c.id).where(_escalation_due(), approvals.c.escalate_at <= now).limit(limit)
    )
    return [str(r.id) for r in rows]


async def next_escalation(conn: AsyncConnection) -> float | None:
    result = await conn.execute(select(func.min(approvals.c.escalate_at)).where(_escalation_due()))
    value = result.scalar_one_or_none()
    return None if value is None else float(value)


async def mark_escalated(conn: AsyncConnection, approval_id: str, now: float) -> bool:
    """Record that a pending approval was escalated at `now`; True only for the one caller that did it.

    The compare-and-set (still pending, not escalated yet, its time has come, and not expired) is
    what makes an escalation happen once across replicas, retries and restarts.
    """
    result = await conn.execute(
        update(approvals)
        .where(
            approvals.c.id == approval_id,
            _escalation_due(),
            approvals.c.escalate_at <= now,
            approvals.c.expires_at > now,
        )
        .values(escalated_at=now, updated_at=now)
    )
    return result.rowcount == 1


async def lost_executions(conn: AsyncConnection, now: float) -> list[str]:
    """Executing rows whose executor stopped renewing its lease (it crashed mid-call)."""
    rows = await conn.execute(
        select(approvals.c.id).where(approvals.c.status == "executing", approvals.c.lease_until < now)
    )
    return [str(r.id) for r in rows]


async def unclaimed_approved(conn: AsyncConnection, decided_before: float, limit: int = 100) -> list[str]:
    rows = await conn.execute(
        select(approvals.c.id)
        .where(approvals.c.status == "approved", approvals.c.decided_at <= decided_before)
        .limit(limit)
    )
    return [str(r.id) for r in rows]


async def changed_since(conn: AsyncConnection, since: float) -> list[tuple[str, float]]:
    rows = await conn.execute(
        select(approvals.c.id, approvals.c.updated_at)
        .where(approvals.c.updated_at > since)
        .order_by(approvals.c.updated_at)
    )
    return [(str(r.id), float(r.updated_at)) for r in rows]


async def search(
    conn: AsyncConnection,
    *,
    statuses: Sequence[str] = (),
    agent: str | None = None,
    tool: str | None = None,
    upstream: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 100,
    newest_first: bool = True,
) -> list[ApprovalRow]:
    query = select(*_COLUMNS)
    if statuses:
        query = query.where(approvals.c.status.in_(list(statuses)))
    if agent:
        query = query.where(approvals.c.agent == agent)
    if tool:
        query = query.where(approvals.c.tool == tool)
    if upstream:
        query = query.where(approvals.c.upstream == upstream)
    if since is not None:
        query = query.where(approvals.c.created_at >= since)
    if until is not None:
        query = query.where(approvals.c.created_at < until)
    order = approvals.c.created_at.desc() if newest_first else approvals.c.created_at.asc()
    return [_row(r) for r in await conn.execute(query.order_by(order).limit(limit))]


def _prunable(finished_before: float) -> Condition:
    """Finished before `finished_before`, and referenced by no stream and no continuation."""
    successor = approvals.alias("successor")
    return and_(
        approvals.c.status.in_(FINISHED),
        approvals.c.updated_at < finished_before,
        ~select(streams.c.id).where(streams.c.approval_id == approvals.c.id).exists(),
        ~select(successor.c.id).where(successor.c.continues == approvals.c.id).exists(),
    )


async def prune_finished(conn: AsyncConnection, finished_before: float, limit: int) -> int:
    """Delete up to `limit` finished approvals last changed before `finished_before`, with their votes
    and their Slack and webhook outbox rows; returns how many went.

    Never an open one, nor one a stream or a continuing approval still references (those go once
    their stream is purged, or their successor pruned). The caller passes a time already past
    `result_retention_seconds`. The DELETE repeats the conditions, so a row referenced since the
    SELECT stays; replicas skip rows another one is deleting (SKIP LOCKED on PostgreSQL), and rows
    already gone are simply not found.
    """
    ids = (
        (
            await conn.execute(
                select(approvals.c.id)
                .where(_prunable(finished_before))
                .order_by(approvals.c.updated_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    if not ids:
        return 0
    await conn.execute(delete(slack_outbox).where(slack_outbox.c.approval_id.in_(ids)))
    await conn.execute(delete(webhook_outbox).where(webhook_outbox.c.approval_id.in_(ids)))
    await conn.execute(delete(approval_votes).where(approval_votes.c.approval_id.in_(ids)))
    result = await conn.execute(delete(approvals).where(approvals.c.id.in_(ids), _prunable(finished_before)))
    return int(result.rowcount or 0)
