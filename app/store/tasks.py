"""Queries for MCP tasks (`tasks` table): insert, read by id or approval, list an agent's, settle, cancel.

A task's status is not stored: it is read from its approval (or, for a call the policy allowed at
once, from whether `result` is set). The only writes after the insert are the upstream's answer of
an allowed call and the agent's cancellation, each a conditional UPDATE that happens at most once.
Store functions never commit (the caller's transaction does).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.models import tasks


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: str
    agent: str
    upstream: str
    tool: str
    approval_id: str | None
    result: str | None
    note: str | None
    """Airlock's sentence when Airlock, not the upstream, answered the call (a refusal, a lost run)."""
    lease_until: float | None
    """While an allowed call runs: until when its process vouches for it (renewed as it runs)."""
    cancelled_at: float | None
    created_at: float
    updated_at: float
    expires_at: float


async def insert(conn: AsyncConnection, row: TaskRow) -> None:
    """Insert a task. Raises `IntegrityError` when its approval already has one."""
    await conn.execute(
        tasks.insert().values(
            id=row.id,
            agent=row.agent,
            upstream=row.upstream,
            tool=row.tool,
            approval_id=row.approval_id,
            result=row.result,
            note=row.note,
            lease_until=row.lease_until,
            cancelled_at=row.cancelled_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            expires_at=row.expires_at,
        )
    )


async def get(conn: AsyncConnection, task_id: str) -> TaskRow | None:
    row = (await conn.execute(select(tasks).where(tasks.c.id == task_id))).first()
    return None if row is None else TaskRow(**row._mapping)


async def for_approval(conn: AsyncConnection, approval_id: str) -> TaskRow | None:
    row = (await conn.execute(select(tasks).where(tasks.c.approval_id == approval_id))).first()
    return None if row is None else TaskRow(**row._mapping)


async def list_for_agent(
    conn: AsyncConnection, agent: str, *, now: float, after: tuple[float, str] | None, limit: int
) -> list[TaskRow]:
    """`agent`'s live tasks, oldest first, after the cursor (`created_at`, `id`) when one is given."""
    statement = select(tasks).where(tasks.c.agent == agent, tasks.c.expires_at > now)
    if after is not None:
        created_at, task_id = after
        statement = statement.where(
            or_(tasks.c.created_at > created_at, and_(tasks.c.created_at == created_at, tasks.c.id > task_id))
        )
    rows = await conn.execute(statement.order_by(tasks.c.created_at, tasks.c.id).limit(limit))
    return [TaskRow(**row._mapping) for row in rows]


async def settle(conn: AsyncConnection, task_id: str, result: str, now: float, *, note: str | None = None) -> bool:
    """Store the answer of a task's call (the upstream's, or Airlock's with its `note`); True if this call stored it."""
    statement = update(tasks).where(tasks.c.id == task_id, tasks.c.result.is_(None))
    return (await conn.execute(statement.values(result=result, note=note, updated_at=now))).rowcount == 1


async def renew(conn: AsyncConnection, task_id: str, until: float) -> None:
    """Extend the lease of an allowed call's run (nothing once it is settled)."""
    statement = update(tasks).where(tasks.c.id == task_id, tasks.c.result.is_(None))
    await conn.execute(statement.values(lease_until=until))


async def cancel(conn: AsyncConnection, task_id: str, now: float) -> bool:
    """Record the agent's cancellation; True if this call recorded it (first one wins)."""
    statement = update(tasks).where(tasks.c.id == task_id, tasks.c.cancelled_at.is_(None))
    return (await conn.execute(statement.values(cancelled_at=now, updated_at=now))).rowcount == 1


async def purge_expired(conn: AsyncConnection, now: float, limit: int) -> int:
    """Delete up to `limit` tasks whose ttl ended before `now`; returns how many."""
    doomed = select(tasks.c.id).where(tasks.c.expires_at <= now).limit(limit).scalar_subquery()
    return (await conn.execute(delete(tasks).where(tasks.c.id.in_(doomed)))).rowcount
