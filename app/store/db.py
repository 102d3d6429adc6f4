"""The database handle: an async engine from `database_url`, and transactions that say what they do.

`read()` opens a plain transaction. `write()` opens one that takes SQLite's write lock up front
(`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes can fail at once with
"database is locked" when another process committed in between, without honouring
`busy_timeout`. On PostgreSQL both are ordinary READ COMMITTED transactions; the store's
compare-and-set UPDATEs and `SKIP LOCKED` claims are what keep replicas apart there.

SQLite runs in WAL mode (readers never block the writer) with `synchronous=FULL`, so a commit is on
disk before Airlock tells anyone about it, even across a power cut.

SQLite has one writer at a time, and a connection that finds the write lock taken waits in SQLite's
busy handler: it sleeps and polls (1, 2, 5 … 100 ms), so a lock freed is not handed on, and each
waiter holds a pooled connection and a thread meanwhile: 300 concurrent write transactions ran
three to five times slower that way than queued on a lock (about 130 against 680 a second on an
idle 2-core machine, WAL, `synchronous=FULL`). So `write()` on SQLite first takes this process's
writer lock (an `asyncio.Lock`: first come, first served, handed on at once, no connection held
while waiting); `busy_timeout` then covers only other processes (the CLI, a second `serve`).
Nesting `write()` inside `write()` in one task could never work on SQLite (the inner transaction
waits for the outer's lock); it raises at once instead of waiting `busy_timeout` for nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

_WRITE_OPTION = "airlock_write"
_BUSY_TIMEOUT_MS = 30_000


class Database:
    """Owns the engine. Create one per process (inside `create_app` or a CLI command), dispose at exit."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgres = url.startswith("postgresql")
        self.engine: AsyncEngine = create_engine(url, echo=echo, pool_size=pool_size)
        self.schema = postgres_schema(url)
        self._writer = asyncio.Lock() if self.is_sqlite else None
        self._writing: asyncio.Task[Any] | None = None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A transaction for reading (it may write too, where a lost race is harmless)."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that writes: committed when the block exits without an exception.

        Raises:
            RuntimeError: on SQLite, when this task is already inside `write()`.
            TimeoutError: on SQLite, when this process's other writers kept the database for
                `busy_timeout` (as SQLite itself would give up on another process).
        """
        async with self._writer_turn(), self._transaction() as conn:
            yield conn

    @asynccontextmanager
    async def _writer_turn(self) -> AsyncIterator[None]:
        if self._writer is None:
            yield
            return
        task = asyncio.current_task()
        if self._writing is not None and self._writing is task:
            raise RuntimeError("write() inside write() cannot work on SQLite (one writer at a time)")
        async with asyncio.timeout(_BUSY_TIMEOUT_MS / 1000):
            await self._writer.acquire()
        self._writing = task
        try:
            yield
        finally:
            self._writing = None
            self._writer.release()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            await conn.execution_options(**{_WRITE_OPTION: True})
            async with conn.begin():
                yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """The async engine for `url` (the app and the migrations both use this).

    A PostgreSQL URL may carry `?search_path=<schema>` to keep Airlock's tables in one schema.
    The pool is bounded (`pool_size` plus as many again in overflow): under a burst, requests wait
    briefly for a connection instead of exhausting the server's `max_connections`, which several
    replicas share. Connections are not reset when they go back to the pool: every use is inside
    `begin()`, which has already committed or rolled back, and the redundant ROLLBACK is a round
    trip (a thread hop with aiosqlite) on every transaction.
    """
    if url.startswith("sqlite"):
        _ensure_sqlite_directory(url)
        engine = create_async_engine(
            url, echo=echo, pool_size=8, max_overflow=24, connect_args={"timeout": 30}, pool_reset_on_return=None
        )
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        event.listen(engine.sync_engine, "begin", _begin_sqlite)
        return engine
    parsed = make_url(url)
    schema = parsed.query.get("search_path")
    connect_args = {}
    if schema:
        parsed = parsed.difference_update_query(["search_path"])
        connect_args["server_settings"] = {"search_path": str(schema)}
    return create_async_engine(
        parsed,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=30,
        pool_pre_ping=True,
        pool_reset_on_return=None,
        connect_args=connect_args,
    )


def postgres_schema(url: str) -> str | None:
    """The schema a PostgreSQL URL names with `?search_path=`, if any."""
    if not url.startswith("postgresql"):
        return None
    value = make_url(url).query.get("search_path")
    return str(value) if value else None


def _ensure_sqlite_directory(url: str) -> None:
    path = url.partition(":///")[2]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's implicit BEGIN is deferred).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", f"busy_timeout={_BUSY_TIMEOUT_MS}", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _begin_sqlite(conn: Any) -> None:
    immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
