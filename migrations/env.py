"""Alembic environment: async, with the database URL handed in by Airlock.

`app/store/migrate.py` puts the URL in `config.attributes["database_url"]` (the polar and rafsaf
templates do the same), so this file never reads settings or the environment itself. On
PostgreSQL an advisory lock serialises replicas that start at the same moment.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from app.store.db import create_engine
from app.store.models import metadata

_MIGRATION_LOCK_KEY = 0x41_49_52_4C  # "AIRL": one lock id for every Airlock replica


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=True, transaction_per_migration=False
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    url = context.config.attributes.get("database_url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: run migrations through `airlock migrate`")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_async(url))


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported; run `airlock migrate`")
run_migrations_online()
