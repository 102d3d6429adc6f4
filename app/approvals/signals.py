"""Wake-ups: "approval X changed", from whoever changed it to whoever waits on it.

Signals are hints, the database is the truth (invariant 7, docs/architecture.md): a woken holder re-reads the row,
and a missed signal costs latency, never correctness, because every process also re-reads recent
changes on a slow safety poll (`app/approvals/sweeper.py`).

Two calls per change, because a signal must never overtake its commit:

- `publish(conn, id)` inside the transaction that changed the row. On PostgreSQL this is
  `pg_notify`, which the server delivers to every replica's listener only when the transaction
  commits. In process it does nothing.
- `wake(id)` after the commit, for this process's own waiters and listeners.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.clock import SYSTEM_CLOCK, Clock
from app.store.db import Database

logger = logging.getLogger("airlock.signals")

CHANNEL: Final = "airlock_approvals"
Listener = Callable[[str], None]


class Notifier:
    """In-process wake-ups (enough for SQLite, where every writer shares this process or polls)."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._listeners: list[Listener] = []

    async def publish(self, conn: AsyncConnection, approval_id: str) -> None:
        """Announce a change from inside the transaction that made it (delivered on commit)."""

    def wake(self, approval_id: str) -> None:
        """Wake this process's waiters on `approval_id` and tell every listener."""
        for event in self._waiters.get(approval_id, ()):
            event.set()
        for listener in self._listeners:
            try:
                listener(approval_id)
            except Exception:
                logger.exception("approval listener failed")

    @contextmanager
    def waiter(self, approval_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever `approval_id` changes, for as long as the block runs."""
        event = asyncio.Event()
        self._waiters.setdefault(approval_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(approval_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[approval_id]

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(approval_id)` on every change; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    @property
    def watched(self) -> int:
        return len(self._waiters)

    async def run(self) -> None:
        """Deliver signals from other processes until cancelled (nothing to do in process)."""
        await asyncio.Event().wait()


class PostgresNotifier(Notifier):
    """Wake-ups across replicas through PostgreSQL LISTEN/NOTIFY."""

    def __init__(self, dsn: str, *, schema: str | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__()
        self._dsn = dsn
        self._clock = clock
        # NOTIFY channels are per database, not per schema: name the schema so deployments that
        # share a database (or parallel test runs) do not wake each other.
        self.channel = CHANNEL if not schema else f"{CHANNEL}_{schema}"[:63]
        self.listening = asyncio.Event()

    async def publish(self, conn: AsyncConnection, approval_id: str) -> None:
        await conn.execute(text("SELECT pg_notify(:channel, :id)"), {"channel": self.channel, "id": approval_id})

    async def run(self) -> None:
        """Hold one listening connection; reconnect with backoff if it drops."""
        delay = 0.5
        while True:
            try:
                connection = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                logger.warning("cannot listen for approval changes (%s); retrying in %.1fs", exc, delay)
                await self._clock.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.5
            try:
                await connection.add_listener(self.channel, self._on_notify)
                self.listening.set()
                closed = asyncio.Event()
                # Bound now: a late callback from this connection must not end the next one's wait.
                connection.add_termination_listener(lambda _conn, closed=closed: closed.set())
                await closed.wait()
                logger.warning("lost the approval-change listener connection; reconnecting")
            finally:
                self.listening.clear()
                if not connection.is_closed():
                    await connection.close(timeout=2)

    def _on_notify(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        self.wake(payload)


def asyncpg_dsn(database_url: str) -> str:
    """The plain DSN asyncpg wants, from a SQLAlchemy `postgresql+asyncpg://` URL.

    asyncpg passes unknown DSN query parameters (`search_path`) on as server settings.
    """
    return "postgresql://" + database_url.split("://", 1)[1]


def notifier_for(db: Database, *, clock: Clock = SYSTEM_CLOCK) -> Notifier:
    """The notifier a database calls for: LISTEN/NOTIFY on PostgreSQL, in process otherwise."""
    if db.is_postgres:
        return PostgresNotifier(asyncpg_dsn(db.url), schema=db.schema, clock=clock)
    return Notifier()
