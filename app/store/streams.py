"""Queries for held streams and their durable event log (replayed on `Last-Event-ID`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.models import cancelled_requests, stream_events, streams


@dataclass(frozen=True, slots=True)
class StreamRow:
    id: str
    approval_id: str
    agent: str
    session_id: str | None
    request_id: str
    progress_token: str | None
    hold_until: float
    created_at: float


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    data: str


async def insert_stream(conn: AsyncConnection, row: StreamRow) -> None:
    await conn.execute(
        streams.insert().values(
            id=row.id,
            approval_id=row.approval_id,
            agent=row.agent,
            session_id=row.session_id,
            request_id=row.request_id,
            progress_token=row.progress_token,
            hold_until=row.hold_until,
            created_at=row.created_at,
        )
    )


async def get_stream(conn: AsyncConnection, stream_id: str) -> StreamRow | None:
    row = (await conn.execute(select(streams).where(streams.c.id == stream_id))).first()
    return None if row is None else StreamRow(**row._mapping)


async def streams_for_request(conn: AsyncConnection, session_id: str, request_id: str) -> list[StreamRow]:
    rows = await conn.execute(
        select(streams).where(streams.c.session_id == session_id, streams.c.request_id == request_id)
    )
    return [StreamRow(**r._mapping) for r in rows]


async def append_event(conn: AsyncConnection, stream_id: str, data: str, now: float) -> int:
    """Store the next event of a stream; returns its sequence number (1, 2, …)."""
    last = (
        await conn.execute(select(func.max(stream_events.c.seq)).where(stream_events.c.stream_id == stream_id))
    ).scalar_one_or_none()
    seq = (last or 0) + 1
    await conn.execute(stream_events.insert().values(stream_id=stream_id, seq=seq, data=data, created_at=now))
    return seq


async def events_after(conn: AsyncConnection, stream_id: str, seq: int) -> list[StoredEvent]:
    rows = await conn.execute(
        select(stream_events.c.seq, stream_events.c.data)
        .where(stream_events.c.stream_id == stream_id, stream_events.c.seq > seq)
        .order_by(stream_events.c.seq)
    )
    return [StoredEvent(int(r.seq), str(r.data)) for r in rows]


async def purge_ended(conn: AsyncConnection, ended_before: float, limit: int) -> int:
    """Delete up to `limit` streams whose hold ended before `ended_before`, with their events."""
    ids = (
        (await conn.execute(select(streams.c.id).where(streams.c.hold_until < ended_before).limit(limit)))
        .scalars()
        .all()
    )
    if not ids:
        return 0
    await conn.execute(delete(stream_events).where(stream_events.c.stream_id.in_(ids)))
    await conn.execute(delete(streams).where(streams.c.id.in_(ids)))
    return len(ids)


async def record_cancellation(conn: AsyncConnection, session_id: str, request_id: str, now: float) -> None:
    """Remember that the client cancelled this request (once; a repeated cancellation changes nothing)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    await conn.execute(
        insert(cancelled_requests)
        .values(session_id=session_id, request_id=request_id, cancelled_at=now)
        .on_conflict_do_nothing(index_elements=["session_id", "request_id"])
    )


async def was_cancelled(conn: AsyncConnection, session_id: str, request_id: str) -> bool:
    found = await conn.execute(
        select(cancelled_requests.c.cancelled_at).where(
            cancelled_requests.c.session_id == session_id, cancelled_requests.c.request_id == request_id
        )
    )
    return found.first() is not None


async def purge_cancellations(conn: AsyncConnection, before: float) -> int:
    result = await conn.execute(delete(cancelled_requests).where(cancelled_requests.c.cancelled_at < before))
    return int(result.rowcount or 0)
