"""The database handle on SQLite: writers in one process take turns; a nested write fails at once.

Provenance: Airlock-defined (issue 10, class 5: no "database is locked" under concurrent writes).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from app.store.db import Database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")
    async with database.write() as conn:
        await conn.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        await conn.execute(text("INSERT INTO counter VALUES (0)"))
    try:
        yield database
    finally:
        await database.dispose()


async def test_concurrent_read_then_write_transactions_all_commit_and_none_is_lost(db: Database) -> None:
    async def increment() -> None:
        async with db.write() as conn:
            n = (await conn.execute(text("SELECT n FROM counter"))).scalar_one()
            await conn.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})

    async with asyncio.timeout(60):
        await asyncio.gather(*(increment() for _ in range(200)))
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT n FROM counter"))).scalar_one() == 200


async def test_a_write_inside_a_write_in_the_same_task_fails_at_once(db: Database) -> None:
    async with asyncio.timeout(5), db.write():
        with pytest.raises(RuntimeError, match="write\\(\\) inside write\\(\\)"):
            async with db.write():
                pass


async def test_a_task_started_inside_a_write_writes_after_it(db: Database) -> None:
    """A child task inherits nothing: it waits its turn rather than being taken for a nested write."""
    async with asyncio.timeout(10):
        async with db.write() as conn:
            await conn.execute(text("UPDATE counter SET n = 1"))
            child = asyncio.create_task(_set(db, 2))
        await child
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT n FROM counter"))).scalar_one() == 2


async def _set(db: Database, n: int) -> None:
    async with db.write() as conn:
        await conn.execute(text("UPDATE counter SET n = :n"), {"n": n})
