"""Handshake-era sessions (2024-11-05 … 2025-11-25): Airlock's own session ids, bound to an agent.

Airlock hands the agent its own unguessable `Mcp-Session-Id` and keeps the upstream's session id
behind it. That binds every session, and every stream and event id within it, to the agent
identity that opened it (DESIGN invariant 4): another agent presenting the id gets 404, exactly
as if it did not exist. Sessions live in the database so any replica can serve a session and a
client whose replica died can resume on another; each process caches the rows it has seen.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections import OrderedDict

from app.store import sessions as session_store
from app.store.db import Database
from app.store.sessions import SessionRow

_CACHE_SIZE = 50_000


class SessionRegistry:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: OrderedDict[str, SessionRow] = OrderedDict()

    async def create(self, *, agent: str, upstream: str, upstream_session_id: str | None,
                     protocol_version: str, initialize_params: str) -> SessionRow:
        row = SessionRow(id=secrets.token_urlsafe(24), agent=agent, upstream=upstream,
                         upstream_session_id=upstream_session_id, protocol_version=protocol_version,
                         initialize_params=initialize_params, created_at=time.time(), closed_at=None)
        async with self._db.write() as conn:
            await session_store.insert_session(conn, row)
        self._remember(row)
        return row

    async def get(self, session_id: str) -> SessionRow | None:
        """The open session with this id, or None (unknown or closed)."""
        row = self._cache.get(session_id)
        if row is None:
            async with self._db.read() as conn:
                row = await session_store.get_session(conn, session_id)
            if row is None:
                return None
            self._remember(row)
        return None if row.closed_at is not None else row

    async def get_any(self, session_id: str) -> SessionRow | None:
        """The session even if closed (an approved call of a closed session still runs)."""
        async with self._db.read() as conn:
            return await session_store.get_session(conn, session_id)

    async def close(self, session_id: str) -> None:
        async with self._db.write() as conn:
            await session_store.close_session(conn, session_id, time.time())
        self._cache.pop(session_id, None)

    async def remap(self, row: SessionRow, upstream_session_id: str | None) -> SessionRow:
        """Point an Airlock session at a new upstream session (the old one was lost upstream)."""
        async with self._db.write() as conn:
            await session_store.set_upstream_session(conn, row.id, upstream_session_id)
        updated = dataclasses.replace(row, upstream_session_id=upstream_session_id)
        self._remember(updated)
        return updated

    def _remember(self, row: SessionRow) -> None:
        self._cache[row.id] = row
        self._cache.move_to_end(row.id)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

