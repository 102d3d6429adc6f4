"""Queries for the audit log: append entries, and list them with filters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
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


async def search(conn: AsyncConnection, *, event: str | None = None, agent: str | None = None,
                 tool: str | None = None, upstream: str | None = None, decision: str | None = None,
                 approval_id: str | None = None, since: float | None = None, until: float | None = None,
                 limit: int = 100, newest_first: bool = True) -> list[AuditRow]:
    query = select(audit_log)
    for column, value in ((audit_log.c.event, event), (audit_log.c.agent, agent), (audit_log.c.tool, tool),
                          (audit_log.c.upstream, upstream), (audit_log.c.decision, decision),
                          (audit_log.c.approval_id, approval_id)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if until is not None:
        query = query.where(audit_log.c.at < until)
    order = (audit_log.c.id.desc(),) if newest_first else (audit_log.c.id.asc(),)
    rows = await conn.execute(query.order_by(*order).limit(limit))
    return [AuditRow(**r._mapping) for r in rows]
