"""Suite-wide fixtures: a migrated database per test, the demo upstream, and a running Airlock.

The database is SQLite by default (a copy of a template migrated once per session). With
`AIRLOCK_TEST_DATABASE=postgres` every test runs on PostgreSQL instead (see `tests/pg.py`), and
tests that always need PostgreSQL (several replicas sharing one queue) use `postgres_url`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.demo.upstream import DemoMarket, build_app
from app.store.migrate import upgrade
from tests.harness import AirlockUnderTest, copy_database, running_airlock, settings_for_test
from tests.net import serve

# Fixtures other modules define for several test files (`require_nginx`).
pytest_plugins = ["tests.nginx"]

ON_POSTGRES = os.environ.get("AIRLOCK_TEST_DATABASE", "sqlite") == "postgres"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "airlock.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    """A migrated PostgreSQL schema for this test session (skips or fails when there is no server)."""
    from tests import pg

    pg.require_postgres()
    url = pg.create_schema()
    try:
        yield url
    finally:
        pg.drop_schema(url)


@pytest.fixture
def postgres_url(postgres_schema: str) -> str:
    """The session's PostgreSQL schema, emptied for this test."""
    from tests import pg

    asyncio.run(pg.truncate_all(postgres_schema))
    return postgres_schema


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if ON_POSTGRES:
        return str(request.getfixturevalue("postgres_url"))
    return copy_database(request.getfixturevalue("sqlite_template"), tmp_path / "airlock.db")


@pytest.fixture
def market() -> DemoMarket:
    return DemoMarket(examples=False)


@pytest.fixture
async def upstream_url(market: DemoMarket) -> AsyncIterator[str]:
    async with serve(build_app(market)) as url:
        yield f"{url}/mcp"


StartAirlock = Callable[..., Awaitable[AirlockUnderTest]]


@pytest.fixture
async def start_airlock(tmp_path: Path, upstream_url: str, database_url: str) -> AsyncIterator[StartAirlock]:
    """`await start_airlock(policy=..., approvals={...})`: an Airlock for this test (stopped at teardown)."""
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> AirlockUnderTest:
            settings = settings_for_test(tmp_path, upstream_url, database_url, **overrides)
            return await stack.enter_async_context(running_airlock(settings))

        yield start


@pytest.fixture
async def airlock(start_airlock: StartAirlock) -> AirlockUnderTest:
    return await start_airlock()


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    """Both protocol eras: `auto` speaks 2026-07-28, `legacy` the initialize handshake."""
    return str(request.param)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    del config
    for item in items:
        if "tests/e2e/" in str(item.fspath) or "tests/gateway/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
