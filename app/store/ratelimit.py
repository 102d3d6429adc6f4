"""Shared, exact rate-limit counters: one atomic upsert per rate-limited call, on any replica.

Fixed windows aligned to multiples of the window length: "at most `max` calls per agent in each
window". The upsert only increments while the count is below the maximum, so concurrent callers
on several replicas can never overshoot it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.models import rate_counters


async def take(conn: AsyncConnection, *, key: str, limit: int, expires_at: float) -> int | None:
    """Count one call against `key`; returns the new count, or None when the limit is reached."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement: Any = insert(rate_counters).values(key=key, count=1, expires_at=expires_at)
    statement = statement.on_conflict_do_update(
        index_elements=[rate_counters.c.key],
        set_={"count": rate_counters.c.count + 1},
        where=rate_counters.c.count < limit,
    ).returning(rate_counters.c.count)
    row = (await conn.execute(statement)).first()
    return None if row is None else int(row[0])


async def purge_expired(conn: AsyncConnection, now: float) -> int:
    return (await conn.execute(delete(rate_counters).where(rate_counters.c.expires_at < now))).rowcount
