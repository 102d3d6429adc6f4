"""Queries for scoped grants (`grants`): create one, find the live grant covering a call, list, revoke.

Every read compares with the caller's `now`, so an expired grant is dead the moment it expires,
on every replica, with nothing to sweep. Revocation is one conditional UPDATE (`revoked_at IS
NULL`): a replayed or concurrent revoke changes nothing and says so. Nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Row, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.models import approvals, grants


@dataclass(frozen=True)
class GrantRow:
    id: str
    agent: str
    upstream: str
    tool: str
    args_hash: str | None
    """NULL: every call of the tool (scope `tool`); else only calls with these arguments."""
    created_by: str
    approval_id: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    revoked_by: str | None


_COLUMNS = [grants.c[f.name] for f in fields(GrantRow)]


def _row(row: Row[Any]) -> GrantRow:
    return GrantRow(**row._mapping)


async def insert(conn: AsyncConnection, grant: GrantRow) -> None:
    await conn.execute(grants.insert().values(**{f.name: getattr(grant, f.name) for f in fields(GrantRow)}))


async def get(conn: AsyncConnection, grant_id: str) -> GrantRow | None:
    row = (await conn.execute(select(*_COLUMNS).where(grants.c.id == grant_id))).first()
    return None if row is None else _row(row)


async def of_approval(conn: AsyncConnection, approval_id: str) -> GrantRow | None:
    row = (await conn.execute(select(*_COLUMNS).where(grants.c.approval_id == approval_id))).first()
    return None if row is None else _row(row)


async def covering(
    conn: AsyncConnection, *, agent: str, upstream: str, tool: str, args_hash: str, rule: str, now: float
) -> GrantRow | None:
    """The live grant (unexpired, unrevoked) that covers this exact call, the one expiring last.

    Only a grant given with an approval parked under `rule` (the approval's `policy_rule`) counts.
    """
    query = (
        select(*_COLUMNS)
        .join(approvals, approvals.c.id == grants.c.approval_id)
        .where(
            approvals.c.policy_rule == rule,
            grants.c.agent == agent,
            grants.c.upstream == upstream,
            grants.c.tool == tool,
            grants.c.expires_at > now,
            grants.c.revoked_at.is_(None),
            or_(grants.c.args_hash.is_(None), grants.c.args_hash == args_hash),
        )
        .order_by(grants.c.expires_at.desc(), grants.c.id)
        .limit(1)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _row(row)


async def live(conn: AsyncConnection, *, now: float, limit: int = 500) -> list[GrantRow]:
    """Grants neither expired nor revoked, newest first."""
    query = (
        select(*_COLUMNS)
        .where(grants.c.expires_at > now, grants.c.revoked_at.is_(None))
        .order_by(grants.c.created_at.desc(), grants.c.id)
        .limit(limit)
    )
    return [_row(row) for row in (await conn.execute(query)).all()]


async def revoke(conn: AsyncConnection, grant_id: str, *, by: str, now: float) -> bool:
    """Revoke a grant not yet revoked; False when it does not exist or was revoked already."""
    result = await conn.execute(
        update(grants)
        .where(grants.c.id == grant_id, grants.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by=by)
    )
    return result.rowcount == 1
