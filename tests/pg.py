"""PostgreSQL for tests: the machine's server (127.0.0.1:5432, user postgres, database test).

Each test session migrates its own schema inside the `test` database (so parallel runs and the
developer's data never mix), and every test starts from empty tables (TRUNCATE is much faster
than migrating a schema per test). Tests that need PostgreSQL skip with a clear reason when no
server answers, except under `CI=true`, where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket

import asyncpg
import pytest

from app.store.models import metadata

BASE_URL = os.environ.get("AIRLOCK_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def _dsn(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1].split("?", 1)[0]


def postgres_reachable(url: str = BASE_URL) -> str | None:
    """None when PostgreSQL answers at `url`; otherwise why not."""
    host_port = url.split("@", 1)[-1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    try:
        with socket.create_connection((host, int(port or 5432)), timeout=2):
            pass
    except OSError as exc:
        return f"no PostgreSQL at {host_port} ({exc.strerror or exc})"
    try:
        asyncio.run(_ping(url))
    except Exception as exc:
        return f"PostgreSQL at {host_port} refused the test login ({exc})"
    return None


async def _ping(url: str) -> None:
    connection = await asyncpg.connect(_dsn(url), timeout=5)
    await connection.close()


def require_postgres() -> None:
    problem = postgres_reachable()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but PostgreSQL is unreachable: {problem}")
    pytest.skip(f"PostgreSQL tests need a server: {problem} (set CI=true to make this a failure)")


def create_schema() -> str:
    """Create and migrate a fresh schema; returns the SQLAlchemy URL that uses it."""
    from app.store.migrate import upgrade

    schema = f"airlock_test_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_execute(f'CREATE SCHEMA "{schema}"'))
    url = f"{BASE_URL}?search_path={schema}"
    upgrade(url)
    return url


def drop_schema(url: str) -> None:
    schema = url.rsplit("search_path=", 1)[1]
    asyncio.run(_execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


async def truncate_all(url: str) -> None:
    schema = url.rsplit("search_path=", 1)[1]
    tables = ", ".join(f'"{schema}"."{table.name}"' for table in metadata.sorted_tables)
    await _execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


async def _execute(sql: str) -> None:
    connection = await asyncpg.connect(_dsn(BASE_URL), timeout=10)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()
