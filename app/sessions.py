"""Handshake-era sessions (2024-11-05 … 2025-11-25): Airlock's own session ids, bound to an agent.

Airlock hands the agent its own unguessable `Mcp-Session-Id` and keeps the upstream's session id
behind it. That binds every session, and every stream and event id within it, to the agent
identity that opened it (invariant 4, docs/architecture.md): another agent presenting the id gets 404, exactly
as if it did not exist. Sessions live in the database so any replica can serve a session and a
client whose replica died can resume on another; each process caches the rows it has seen.

Each session holds a slot in the upstream's own session table, so sessions are bounded
(`[sessions]`, issue 10 "One agent cannot take what others need"):

- an agent has at most `max_per_agent` open sessions. Opening one more *evicts* the agent's least
  recently used session rather than refusing `initialize`: clients that crash never send DELETE,
  and refusing would lock such an agent out until its leaked sessions went idle. The evicted
  session's client gets 404 on its next request and, as the spec requires, initializes again.
  A fleet of workers sharing one agent token should raise the cap;
- a session unused for `idle_seconds` is closed by `run()` (every replica runs it; closing is a
  compare-and-set, so one replica wins);
- whoever closes a session (the agent's DELETE, the idle janitor, an eviction) releases the
  upstream session behind it with an HTTP DELETE carrying the upstream's `Mcp-Session-Id`;
- closed sessions are deleted after `retention_seconds`, unless an approval still open refers
  to them (an approved call of a closed session still runs).

Use is recorded at most every `_touch_interval` seconds, not on every request: idleness is measured
in minutes and a write per request would put the database on the hot path. The same write tells
a replica that another one closed the session, so a closed session is refused everywhere within
that interval. Known gaps: a GET stream left open counts as one use when it opens, so a session
whose client only listens is closed after `idle_seconds` (the client then gets 404 and initializes
again); and an upstream session opened again for an approved call of a session that was already
closed (see `app/approvals/executor.py`) is left to the upstream's own expiry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Final

from app.config import SessionSettings
from app.protocol import MCP_PROTOCOL_VERSION, MCP_SESSION_ID
from app.store import sessions as session_store
from app.store.db import Database
from app.store.sessions import SessionRow
from app.upstream import Upstream, UpstreamUnavailable

logger = logging.getLogger("airlock.sessions")

_CACHE_SIZE: Final = 50_000
_BATCH: Final = 200
"""Rows one janitor transaction closes or deletes: a pass never holds the database for long."""
_MAX_BATCHES: Final = 20
_RELEASE_DRAIN_SECONDS: Final = 5.0


class SessionRegistry:
    def __init__(
        self,
        db: Database,
        settings: SessionSettings,
        upstreams: Mapping[str, Upstream],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Args:
        upstreams: the runtime's upstreams by name (filled when the runtime starts), used to
            release upstream sessions.
        clock: epoch seconds; tests pass a virtual clock.
        """
        self._db = db
        self._settings = settings
        self._upstreams = upstreams
        self._clock = clock
        self._touch_interval = min(60.0, settings.idle_seconds / 10)
        self._cache: OrderedDict[str, SessionRow] = OrderedDict()

    async def create(
        self,
        *,
        agent: str,
        upstream: str,
        upstream_session_id: str | None,
        protocol_version: str,
        initialize_params: str,
    ) -> SessionRow:
        """Record a new session; closes the agent's least recently used ones beyond `max_per_agent`."""
        now = self._clock()
        row = SessionRow(
            id=secrets.token_urlsafe(24),
            agent=agent,
            upstream=upstream,
            upstream_session_id=upstream_session_id,
            protocol_version=protocol_version,
            initialize_params=initialize_params,
            created_at=now,
            closed_at=None,
            last_used_at=now,
        )
        async with self._db.write() as conn:
            await session_store.insert_session(conn, row)
        self._remember(row)
        async with self._db.read() as conn:
            evicted = await session_store.open_beyond(conn, agent, self._settings.max_per_agent)
        for old in evicted:
            if old.id != row.id and await self.end(old):
                logger.info(
                    "session %s of agent %s closed: the agent opened more than %d",
                    old.id,
                    agent,
                    self._settings.max_per_agent,
                )
        return row

    async def get(self, session_id: str) -> SessionRow | None:
        """The open session with this id, or None (unknown or closed). Records the use."""
        row = self._cache.get(session_id)
        if row is None:
            async with self._db.read() as conn:
                row = await session_store.get_session(conn, session_id)
            if row is None:
                return None
            self._remember(row)
        if row.closed_at is not None:
            return None
        return await self._touch(row)

    async def _touch(self, row: SessionRow) -> SessionRow | None:
        now = self._clock()
        if now - row.last_used_at < self._touch_interval:
            return row
        async with self._db.write() as conn:
            still_open = await session_store.touch_session(conn, row.id, now)
        if not still_open:
            self._cache.pop(row.id, None)
            return None
        touched = dataclasses.replace(row, last_used_at=now)
        self._remember(touched)
        return touched

    async def get_any(self, session_id: str) -> SessionRow | None:
        """The session even if closed (an approved call of a closed session still runs)."""
        async with self._db.read() as conn:
            return await session_store.get_session(conn, session_id)

    async def close(self, session_id: str) -> bool:
        """Close a session without releasing its upstream session (the upstream already forgot it)."""
        async with self._db.write() as conn:
            closed = await session_store.close_session(conn, session_id, self._clock())
        self._cache.pop(session_id, None)
        return closed

    async def end(self, row: SessionRow, *, idle_before: float | None = None) -> bool:
        """Close a session and release the upstream session behind it; False if it was already closed.

        Args:
            idle_before: close only if the session was not used since (the idle janitor's condition).
        """
        async with self._db.write() as conn:
            closed = await session_store.close_session(conn, row.id, self._clock(), idle_before=idle_before)
        if closed:
            self._cache.pop(row.id, None)
            await self._release_upstream(row)
        return closed

    async def _release_upstream(self, row: SessionRow) -> None:
        upstream = self._upstreams.get(row.upstream)
        if row.upstream_session_id is None or upstream is None:
            return
        headers = {MCP_SESSION_ID: row.upstream_session_id, MCP_PROTOCOL_VERSION: row.protocol_version}
        try:
            async with upstream.request("DELETE", headers=headers) as response:
                await response.drain(_RELEASE_DRAIN_SECONDS)  # the answer says nothing we act on
        except UpstreamUnavailable as exc:
            # The upstream's own expiry will reclaim it; nothing the agent can do about it.
            logger.warning("could not release upstream session of %s on %s: %s", row.id, row.upstream, exc)

    async def remap(self, row: SessionRow, upstream_session_id: str | None) -> SessionRow:
        """Point an Airlock session at a new upstream session (the old one was lost upstream)."""
        async with self._db.write() as conn:
            await session_store.set_upstream_session(conn, row.id, upstream_session_id)
        updated = dataclasses.replace(row, upstream_session_id=upstream_session_id)
        if row.closed_at is None:
            self._remember(updated)
        return updated

    async def run(self) -> None:
        """Close idle sessions and purge old ones, until cancelled."""
        interval = min(60.0, self._settings.idle_seconds / 2)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:
                logger.exception("session sweep failed; retrying")

    async def sweep(self, now: float | None = None) -> tuple[int, int]:
        """One janitor pass at `now` (default: the clock); returns (sessions closed, sessions deleted)."""
        now = self._clock() if now is None else now
        return await self.expire_idle(now), await self.purge(now)

    async def expire_idle(self, now: float) -> int:
        idle_before = now - self._settings.idle_seconds
        closed = 0
        for _ in range(_MAX_BATCHES):
            async with self._db.read() as conn:
                idle = await session_store.idle_sessions(conn, idle_before, _BATCH)
            for row in idle:
                closed += await self.end(row, idle_before=idle_before)
            if len(idle) < _BATCH:
                break
        return closed

    async def purge(self, now: float) -> int:
        deleted = 0
        for _ in range(_MAX_BATCHES):
            async with self._db.write() as conn:
                batch = await session_store.purge_closed(conn, now - self._settings.retention_seconds, _BATCH)
            deleted += batch
            if batch < _BATCH:
                break
        return deleted

    def _remember(self, row: SessionRow) -> None:
        self._cache[row.id] = row
        self._cache.move_to_end(row.id)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
