"""Queries for Slack's durable outbox (`slack_outbox`): enqueue, find due work, claim, record the outcome.

The wanted state of a message is the approval row itself; an outbox row is *due* while the status
its Slack message shows (`rendered_status`, NULL before the first post) differs from the approval's
current status, and its `next_attempt_at` has come. Several replicas may look at the same due row:
each tries `claim()`, a compare-and-set on the lease (`lease_until` empty or lapsed) that works the
same on SQLite and PostgreSQL, and only the one whose UPDATE matched a row does the Slack call.

The row is also where the posted message is: `channel` and `ts` once `posted()` recorded them
(clicks are checked against them). Slack's data lives here, not on the approval.

Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, and_, case, exists, false, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.models import approvals, slack_outbox


@dataclass(frozen=True, slots=True)
class OutboxRow:
    approval_id: str
    channel: str
    """Where the message goes; once posted, the channel id Slack answered."""
    ts: str | None
    """The posted message's timestamp (None: not posted yet)."""
    rendered_status: str | None
    settled: bool
    attempts: int
    next_attempt_at: float
    lease_owner: str | None
    lease_until: float | None
    last_error: str | None
    rendered_votes: str | None = None
    """The quorum votes the message shows, as the approval's `votes` column stores them."""
    escalation_shown: bool = False
    """The message shows the approval's escalation, and the escalation target's channel was told."""


@dataclass(frozen=True, slots=True)
class Unannounced:
    """A pending approval with no outbox row (its enqueue was lost), and no Slack message therefore."""

    approval_id: str
    routing: str | None
    """The approval's stored per-channel routing (JSON text, see `approvals.routing`)."""


_COLUMNS = [slack_outbox.c[name] for name in OutboxRow.__slots__]


def _row(row: Row[Any]) -> OutboxRow:
    return OutboxRow(**row._mapping)


async def enqueue(conn: AsyncConnection, approval_id: str, channel: str, now: float) -> bool:
    """Queue the first post of an approval's message; True if queued, False if it already was."""
    values = {
        "approval_id": approval_id,
        "channel": channel,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(slack_outbox).values(**values).on_conflict_do_nothing(index_elements=["approval_id"])
    return (await conn.execute(statement)).rowcount == 1


async def get(conn: AsyncConnection, approval_id: str) -> OutboxRow | None:
    row = (await conn.execute(select(*_COLUMNS).where(slack_outbox.c.approval_id == approval_id))).first()
    return None if row is None else _row(row)


async def message(conn: AsyncConnection, approval_id: str) -> tuple[str, str] | None:
    """The (channel id, ts) of the message posted for an approval, or None when none was."""
    row = (
        await conn.execute(
            select(slack_outbox.c.channel, slack_outbox.c.ts).where(
                slack_outbox.c.approval_id == approval_id, slack_outbox.c.ts.is_not(None)
            )
        )
    ).first()
    return None if row is None else (str(row.channel), str(row.ts))


async def posted(conn: AsyncConnection, approval_id: str, channel: str, ts: str) -> None:
    """Record where the message for an approval was posted.

    Not conditional on the lease: a message Slack accepted exists whoever holds the row now.
    """
    await conn.execute(
        update(slack_outbox).where(slack_outbox.c.approval_id == approval_id).values(channel=channel, ts=ts)
    )


def _stale() -> Any:
    """The message does not show the approval's current status, its quorum votes so far, or its escalation."""
    return or_(
        slack_outbox.c.rendered_status.is_(None),
        slack_outbox.c.rendered_status != approvals.c.status,
        slack_outbox.c.rendered_votes.is_distinct_from(approvals.c.votes),
        and_(approvals.c.escalated_at.is_not(None), slack_outbox.c.escalation_shown == false()),
    )


def _unleased(now: float) -> Any:
    return or_(slack_outbox.c.lease_until.is_(None), slack_outbox.c.lease_until < now)


async def due(conn: AsyncConnection, now: float, limit: int = 50) -> list[str]:
    """Approval ids whose message is stale, whose next attempt has come, and that nobody holds."""
    rows = await conn.execute(
        select(slack_outbox.c.approval_id)
        .join(approvals, approvals.c.id == slack_outbox.c.approval_id)
        .where(slack_outbox.c.settled == false(), slack_outbox.c.next_attempt_at <= now, _unleased(now), _stale())
        .order_by(slack_outbox.c.next_attempt_at)
        .limit(limit)
    )
    return [str(r.approval_id) for r in rows]


async def next_attempt(conn: AsyncConnection) -> float | None:
    """When the earliest stale row may next be tried (after its lease, if held), or None when none is stale."""
    lease_until, attempt_at = slack_outbox.c.lease_until, slack_outbox.c.next_attempt_at
    ready_at = case((lease_until > attempt_at, lease_until), else_=attempt_at)
    result = await conn.execute(
        select(func.min(ready_at))
        .join(approvals, approvals.c.id == slack_outbox.c.approval_id)
        .where(slack_outbox.c.settled == false(), _stale())
    )
    value = result.scalar_one_or_none()
    return None if value is None else float(value)


async def unannounced(conn: AsyncConnection, *, created_before: float, limit: int = 100) -> list[Unannounced]:
    """Pending approvals parked before `created_before` that have no outbox row (so no Slack message)."""
    queued = exists().where(slack_outbox.c.approval_id == approvals.c.id)
    rows = await conn.execute(
        select(approvals.c.id, approvals.c.routing)
        .where(approvals.c.status == "pending", approvals.c.created_at < created_before, ~queued)
        .order_by(approvals.c.created_at)
        .limit(limit)
    )
    return [Unannounced(str(r.id), r.routing) for r in rows]


async def claim(conn: AsyncConnection, approval_id: str, *, owner: str, now: float, lease_until: float) -> bool:
    """Take the row for `owner` until `lease_until`; True when this caller won it."""
    result = await conn.execute(
        update(slack_outbox)
        .where(slack_outbox.c.approval_id == approval_id, slack_outbox.c.settled == false(), _unleased(now))
        .values(lease_owner=owner, lease_until=lease_until, updated_at=now)
    )
    return result.rowcount == 1


async def rendered(
    conn: AsyncConnection,
    approval_id: str,
    *,
    owner: str,
    status: str,
    settled: bool,
    now: float,
    votes: str | None = None,
    escalation_shown: bool = False,
) -> bool:
    """Record that the message now shows `status` (with the quorum `votes`, as the approval stores
    them, and the escalation, if `escalation_shown`), and let go of the row."""
    result = await conn.execute(
        update(slack_outbox)
        .where(slack_outbox.c.approval_id == approval_id, slack_outbox.c.lease_owner == owner)
        .values(
            rendered_status=status,
            rendered_votes=votes,
            settled=settled,
            escalation_shown=escalation_shown,
            attempts=0,
            last_error=None,
            next_attempt_at=now,
            lease_owner=None,
            lease_until=None,
            updated_at=now,
        )
    )
    return result.rowcount == 1


async def failed(
    conn: AsyncConnection, approval_id: str, *, owner: str, error: str, retry_at: float, now: float
) -> bool:
    """Record a failed attempt, to be retried at `retry_at`, and let go of the row."""
    result = await conn.execute(
        update(slack_outbox)
        .where(slack_outbox.c.approval_id == approval_id, slack_outbox.c.lease_owner == owner)
        .values(
            attempts=slack_outbox.c.attempts + 1,
            last_error=error[:2000],
            next_attempt_at=retry_at,
            lease_owner=None,
            lease_until=None,
            updated_at=now,
        )
    )
    return result.rowcount == 1


async def give_up(conn: AsyncConnection, approval_id: str, *, owner: str, error: str, now: float) -> bool:
    """Stop working on the row for good (the message cannot be posted or updated any more)."""
    result = await conn.execute(
        update(slack_outbox)
        .where(slack_outbox.c.approval_id == approval_id, slack_outbox.c.lease_owner == owner)
        .values(settled=True, last_error=error[:2000], lease_owner=None, lease_until=None, updated_at=now)
    )
    return result.rowcount == 1


async def release(conn: AsyncConnection, approval_id: str, *, owner: str, now: float) -> None:
    """Let go of a claimed row without changing anything else (there was nothing to do)."""
    await conn.execute(
        update(slack_outbox)
        .where(and_(slack_outbox.c.approval_id == approval_id, slack_outbox.c.lease_owner == owner))
        .values(lease_owner=None, lease_until=None, updated_at=now)
    )
