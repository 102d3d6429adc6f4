"""Queries for the webhook's durable outbox (`webhook_outbox`) and its replay guard (`webhook_signatures`).

An event row is written once per (approval, seq): `add()` inserts with ON CONFLICT DO NOTHING, so
every process that notices a change may try and only the first insert counts. A row is *due*
while it is not settled, its `next_attempt_at` has come, nobody holds its lease, and no earlier
event of the same approval is still unsettled: that last condition is what keeps an approval's
events in order at the receiver. Replicas take a row with `claim()`, a compare-and-set on the
lease that works the same on SQLite and PostgreSQL, as `slack_outbox` does.

Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Row, case, delete, false, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.models import approvals, webhook_outbox, webhook_signatures


@dataclass(frozen=True, slots=True)
class EventRow:
    event_id: str
    approval_id: str
    seq: int
    event: str
    body: str
    settled: bool
    delivered_at: float | None
    attempts: int
    next_attempt_at: float
    lease_owner: str | None
    lease_until: float | None
    last_error: str | None
    created_at: float


_COLUMNS = [webhook_outbox.c[name] for name in EventRow.__slots__]


def _row(row: Row[Any]) -> EventRow:
    return EventRow(**row._mapping)


def _insert(conn: AsyncConnection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


async def add(conn: AsyncConnection, events: Sequence[dict[str, Any]]) -> int:
    """Insert event rows (`event_id`, `approval_id`, `seq`, `event`, `body`, times); returns how many were new."""
    added = 0
    for values in events:
        statement = _insert(conn)(webhook_outbox).values(**values).on_conflict_do_nothing()
        added += (await conn.execute(statement)).rowcount
    return added


async def seqs(conn: AsyncConnection, approval_id: str) -> set[int]:
    """The seqs already written for an approval."""
    rows = await conn.execute(select(webhook_outbox.c.seq).where(webhook_outbox.c.approval_id == approval_id))
    return {int(seq) for seq in rows.scalars()}


async def last_written_at(conn: AsyncConnection) -> float | None:
    """When the newest event row was written (None: never)."""
    value = (await conn.execute(select(func.max(webhook_outbox.c.created_at)))).scalar_one_or_none()
    return None if value is None else float(value)


async def changed_since(conn: AsyncConnection, since: float, limit: int = 500) -> list[tuple[str, float]]:
    """(approval id, updated_at) of approvals changed at or after `since`, oldest first."""
    rows = await conn.execute(
        select(approvals.c.id, approvals.c.updated_at)
        .where(approvals.c.updated_at >= since)
        .order_by(approvals.c.updated_at)
        .limit(limit)
    )
    return [(str(r.id), float(r.updated_at)) for r in rows]


def _unleased(now: float) -> Any:
    return or_(webhook_outbox.c.lease_until.is_(None), webhook_outbox.c.lease_until < now)


ESCALATED_SEQ: Final = 0
"""The seq of `approval.escalated`, which is not a status: its place is after `parked` (1) and
before every decision (2 and on), as an approval escalates only while pending."""


def _place(seq: Any) -> Any:
    """An event's place in its approval's order: its seq, except the escalation's, which is 1.5."""
    return case((seq == ESCALATED_SEQ, 1.5), else_=seq)


def _head() -> Any:
    """No earlier event of the same approval is still unsettled."""
    earlier = webhook_outbox.alias("earlier")
    return ~(
        select(earlier.c.event_id)
        .where(
            earlier.c.approval_id == webhook_outbox.c.approval_id,
            _place(earlier.c.seq) < _place(webhook_outbox.c.seq),
            earlier.c.settled == false(),
        )
        .exists()
    )


async def due(conn: AsyncConnection, now: float, limit: int = 50) -> list[str]:
    """Event ids to send now: unsettled, due, unleased, and first in line for their approval."""
    rows = await conn.execute(
        select(webhook_outbox.c.event_id)
        .where(webhook_outbox.c.settled == false(), webhook_outbox.c.next_attempt_at <= now, _unleased(now), _head())
        .order_by(webhook_outbox.c.next_attempt_at, webhook_outbox.c.seq)
        .limit(limit)
    )
    return [str(event_id) for event_id in rows.scalars()]


async def next_attempt(conn: AsyncConnection) -> float | None:
    """When the earliest event first in line may next be tried (after its lease, if held); None when none waits."""
    lease_until, attempt_at = webhook_outbox.c.lease_until, webhook_outbox.c.next_attempt_at
    ready_at = case((lease_until > attempt_at, lease_until), else_=attempt_at)
    value = (
        await conn.execute(select(func.min(ready_at)).where(webhook_outbox.c.settled == false(), _head()))
    ).scalar_one_or_none()
    return None if value is None else float(value)


async def get(conn: AsyncConnection, event_id: str) -> EventRow | None:
    row = (await conn.execute(select(*_COLUMNS).where(webhook_outbox.c.event_id == event_id))).first()
    return None if row is None else _row(row)


async def for_approval(conn: AsyncConnection, approval_id: str) -> list[EventRow]:
    """An approval's events in order."""
    rows = await conn.execute(
        select(*_COLUMNS).where(webhook_outbox.c.approval_id == approval_id).order_by(webhook_outbox.c.seq)
    )
    return [_row(r) for r in rows]


async def claim(conn: AsyncConnection, event_id: str, *, owner: str, now: float, lease_until: float) -> bool:
    """Take the row for `owner` until `lease_until`; True when this caller won it."""
    result = await conn.execute(
        update(webhook_outbox)
        .where(webhook_outbox.c.event_id == event_id, webhook_outbox.c.settled == false(), _unleased(now))
        .values(lease_owner=owner, lease_until=lease_until, attempts=webhook_outbox.c.attempts + 1, updated_at=now)
    )
    return result.rowcount == 1


async def delivered(conn: AsyncConnection, event_id: str, *, owner: str, now: float) -> bool:
    """Record that the receiver accepted the event, and let go of the row."""
    return await _settle(conn, event_id, owner=owner, now=now, delivered_at=now, last_error=None)


async def give_up(conn: AsyncConnection, event_id: str, *, owner: str, error: str, now: float) -> bool:
    """Stop trying to send the event (it stays, with `last_error`, for the operator)."""
    return await _settle(conn, event_id, owner=owner, now=now, last_error=error[:2000])


async def _settle(conn: AsyncConnection, event_id: str, *, owner: str, now: float, **values: Any) -> bool:
    result = await conn.execute(
        update(webhook_outbox)
        .where(webhook_outbox.c.event_id == event_id, webhook_outbox.c.lease_owner == owner)
        .values(settled=True, lease_owner=None, lease_until=None, updated_at=now, **values)
    )
    return result.rowcount == 1


async def failed(conn: AsyncConnection, event_id: str, *, owner: str, error: str, retry_at: float, now: float) -> bool:
    """Record a failed attempt, to be retried at `retry_at`, and let go of the row."""
    result = await conn.execute(
        update(webhook_outbox)
        .where(webhook_outbox.c.event_id == event_id, webhook_outbox.c.lease_owner == owner)
        .values(last_error=error[:2000], next_attempt_at=retry_at, lease_owner=None, lease_until=None, updated_at=now)
    )
    return result.rowcount == 1


async def first_use(conn: AsyncConnection, signature: str, *, expires_at: float, now: float) -> bool:
    """Remember a decision request's signature until `expires_at`; False when it was seen before (a replay)."""
    await conn.execute(delete(webhook_signatures).where(webhook_signatures.c.expires_at < now))
    statement = (
        _insert(conn)(webhook_signatures)
        .values(signature=signature, expires_at=expires_at)
        .on_conflict_do_nothing(index_elements=["signature"])
    )
    return (await conn.execute(statement)).rowcount == 1
