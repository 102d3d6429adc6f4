"""Queries for handshake-era sessions: Airlock's session id, its agent, and the upstream's session id.

Closing is a compare-and-set on `closed_at`: whoever closes a session (the agent's DELETE, the idle
janitor, an eviction, on any replica) learns from the row count whether it was first, and only the
first releases the upstream session behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.approvals import OPEN
from app.store.models import approvals, sessions


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    agent: str
    upstream: str
    upstream_session_id: str | None
    protocol_version: str
    initialize_params: str
    created_at: float
    closed_at: float | None
    last_used_at: float


async def insert_session(conn: AsyncConnection, row: SessionRow) -> None:
    await conn.execute(
        sessions.insert().values(
            id=row.id,
            agent=row.agent,
            upstream=row.upstream,
            upstream_session_id=row.upstream_session_id,
            protocol_version=row.protocol_version,
            initialize_params=row.initialize_params,
            created_at=row.created_at,
            closed_at=row.closed_at,
            last_used_at=row.last_used_at,
        )
    )


async def get_session(conn: AsyncConnection, session_id: str) -> SessionRow | None:
    row = (await conn.execute(select(sessions).where(sessions.c.id == session_id))).first()
    return None if row is None else SessionRow(**row._mapping)


async def close_session(
    conn: AsyncConnection, session_id: str, now: float, *, idle_before: float | None = None
) -> bool:
    """Close an open session; True if this call closed it. `idle_before`: only if unused since then."""
    statement = update(sessions).where(sessions.c.id == session_id, sessions.c.closed_at.is_(None))
    if idle_before is not None:
        statement = statement.where(sessions.c.last_used_at < idle_before)
    return (await conn.execute(statement.values(closed_at=now))).rowcount == 1


async def touch_session(conn: AsyncConnection, session_id: str, now: float) -> bool:
    """Record a use of an open session; False when it is closed (perhaps by another replica)."""
    result = await conn.execute(
        update(sessions).where(sessions.c.id == session_id, sessions.c.closed_at.is_(None)).values(last_used_at=now)
    )
    return result.rowcount == 1


async def set_upstream_session(conn: AsyncConnection, session_id: str, upstream_session_id: str | None) -> None:
    await conn.execute(
        update(sessions).where(sessions.c.id == session_id).values(upstream_session_id=upstream_session_id)
    )


async def open_beyond(conn: AsyncConnection, agent: str, keep: int) -> list[SessionRow]:
    """The agent's open sessions after its `keep` most recently used ones."""
    rows = await conn.execute(
        select(sessions)
        .where(sessions.c.agent == agent, sessions.c.closed_at.is_(None))
        .order_by(sessions.c.last_used_at.desc(), sessions.c.created_at.desc())
        .offset(keep)
    )
    return [SessionRow(**r._mapping) for r in rows]


async def idle_sessions(conn: AsyncConnection, idle_before: float, limit: int) -> list[SessionRow]:
    rows = await conn.execute(
        select(sessions)
        .where(sessions.c.closed_at.is_(None), sessions.c.last_used_at < idle_before)
        .order_by(sessions.c.last_used_at)
        .limit(limit)
    )
    return [SessionRow(**r._mapping) for r in rows]


async def purge_closed(conn: AsyncConnection, closed_before: float, limit: int) -> int:
    """Delete up to `limit` sessions closed before `closed_before` that no open approval still needs."""
    needed = exists().where(approvals.c.session_id == sessions.c.id, approvals.c.status.in_(OPEN))
    ids = (
        (await conn.execute(select(sessions.c.id).where(sessions.c.closed_at < closed_before, ~needed).limit(limit)))
        .scalars()
        .all()
    )
    if not ids:
        return 0
    await conn.execute(delete(sessions).where(sessions.c.id.in_(ids)))
    return len(ids)
