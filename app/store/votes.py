"""Queries for approving votes (`approval_votes`): record one, and read who voted.

The caller holds the approval's row (its compare-and-set UPDATE came first in the same
transaction), so a check-then-insert here cannot race another vote on the same approval; the
primary key (approval, reviewer identity) is the backstop. Nothing here commits.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.identity import identity_key
from app.store.models import approval_votes


async def record(conn: AsyncConnection, approval_id: str, *, reviewer: str, via: str, now: float) -> bool:
    """Record `reviewer`'s approving vote; False when this identity had already voted (nothing written)."""
    identity = identity_key(reviewer)
    existing = await conn.execute(
        select(approval_votes.c.reviewer).where(
            approval_votes.c.approval_id == approval_id, approval_votes.c.identity == identity
        )
    )
    if existing.first() is not None:
        return False
    await conn.execute(
        approval_votes.insert().values(approval_id=approval_id, identity=identity, reviewer=reviewer, via=via, at=now)
    )
    return True


async def voters(conn: AsyncConnection, approval_id: str) -> list[str]:
    """The reviewers who approved `approval_id`, in the order their votes were recorded."""
    result = await conn.execute(
        select(approval_votes.c.reviewer)
        .where(approval_votes.c.approval_id == approval_id)
        .order_by(approval_votes.c.at, approval_votes.c.identity)
    )
    return list(result.scalars().all())
