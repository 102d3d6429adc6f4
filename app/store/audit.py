"""Queries for the audit log: append entries, list them with filters, page through them, prune old ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.models import audit_log


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    at: float
    event: str
    agent: str | None
    upstream: str | None
    tool: str | None
    decision: str | None
    rule: str | None
    policy_version: str | None
    latency_ms: float | None
    outcome: str | None
    argument_keys: str | None
    args_hash: str | None
    arguments: str | None
    approval_id: str | None
    actor: str | None
    detail: str | None


async def insert_many(conn: AsyncConnection, entries: Sequence[dict[str, Any]]) -> None:
    if entries:
        await conn.execute(audit_log.insert(), list(entries))


async def search(
    conn: AsyncConnection,
    *,
    event: str | None = None,
    agent: str | None = None,
    tool: str | None = None,
    upstream: str | None = None,
    decision: str | None = None,
    approval_id: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 100,
    newest_first: bool = True,
) -> list[AuditRow]:
    query = select(audit_log)
    for column, value in (
        (audit_log.c.event, event),
        (audit_log.c.agent, agent),
        (audit_log.c.tool, tool),
        (audit_log.c.upstream, upstream),
        (audit_log.c.decision, decision),
        (audit_log.c.approval_id, approval_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if until is not None:
        query = query.where(audit_log.c.at < until)
    order = (audit_log.c.id.desc(),) if newest_first else (audit_log.c.id.asc(),)
    rows = await conn.execute(query.order_by(*order).limit(limit))
    return [AuditRow(**r._mapping) for r in rows]


async def page(
    conn: AsyncConnection,
    *,
    after: tuple[float, int] | None = None,
    since: float | None = None,
    before: float | None = None,
    limit: int = 500,
) -> list[AuditRow]:
    """Up to `limit` entries oldest first (by time, then id), those after the `(at, id)` of `after`.

    Keyset paging: each page is one short query however far the export has gone.
    """
    query = select(audit_log)
    if after is not None:
        at, entry_id = after
        query = query.where(or_(audit_log.c.at > at, and_(audit_log.c.at == at, audit_log.c.id > entry_id)))
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if before is not None:
        query = query.where(audit_log.c.at < before)
    rows = await conn.execute(query.order_by(audit_log.c.at.asc(), audit_log.c.id.asc()).limit(limit))
    return [AuditRow(**r._mapping) for r in rows]


async def prune(conn: AsyncConnection, before: float, limit: int) -> int:
    """Delete up to `limit` of the oldest entries recorded before `before`; returns how many went."""
    # SKIP LOCKED (PostgreSQL; SQLite has one writer anyway): replicas pruning at once share the
    # work instead of queueing on each other's rows.
    ids = (
        (
            await conn.execute(
                select(audit_log.c.id)
                .where(audit_log.c.at < before)
                .order_by(audit_log.c.at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    if not ids:
        return 0
    result = await conn.execute(delete(audit_log).where(audit_log.c.id.in_(ids)))
    return int(result.rowcount or 0)
