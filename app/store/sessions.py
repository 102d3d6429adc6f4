"""Queries for handshake-era sessions: Airlock's session id, its agent, and the upstream's session id."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.models import sessions


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


async def insert_session(conn: AsyncConnection, row: SessionRow) -> None:
    await conn.execute(sessions.insert().values(
        id=row.id, agent=row.agent, upstream=row.upstream, upstream_session_id=row.upstream_session_id,
        protocol_version=row.protocol_version, initialize_params=row.initialize_params,
        created_at=row.created_at, closed_at=row.closed_at))


async def get_session(conn: AsyncConnection, session_id: str) -> SessionRow | None:
    row = (await conn.execute(select(sessions).where(sessions.c.id == session_id))).first()
    return None if row is None else SessionRow(**row._mapping)


async def close_session(conn: AsyncConnection, session_id: str, now: float) -> None:
    await conn.execute(update(sessions).where(sessions.c.id == session_id, sessions.c.closed_at.is_(None))
                       .values(closed_at=now))


async def set_upstream_session(conn: AsyncConnection, session_id: str, upstream_session_id: str | None) -> None:
    await conn.execute(update(sessions).where(sessions.c.id == session_id)
                       .values(upstream_session_id=upstream_session_id))
