"""The agent-token cache: one database read per token per refresh, a bounded revocation delay, bounded misses.

Provenance: Airlock-defined (issue 12, "Performance: halve the gateway's cost per call": the 5 s
token cache expired for every in-flight request at once and each re-read the database). Queries
are counted with SQLAlchemy's `before_cursor_execute` event, never timed; time is a virtual clock.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from app import auth
from app.auth import Credentials
from app.store.db import Database

CACHE_SECONDS = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def token_reads(db: Database) -> Iterator[list[str]]:
    """Every SQL statement that reads agent tokens, while the block runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "agent_tokens" in statement:
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def credentials(db: Database, clock: Clock) -> Credentials:
    return Credentials(db, cache_seconds=CACHE_SECONDS, clock=clock)


@pytest.fixture
def cli(db: Database) -> Credentials:
    """Another process's view (the CLI, another replica): no cache, its revocations unseen by ours."""
    return Credentials(db, cache_seconds=0)


async def test_100_concurrent_requests_after_expiry_cause_exactly_one_read_and_use_the_cached_answer(
    db: Database, credentials: Credentials, cli: Credentials, clock: Clock
) -> None:
    token = (await cli.issue_agent_token("agent-a")).token
    assert await credentials.agent_for(token) == "agent-a"
    clock.now += CACHE_SECONDS + 0.1
    with token_reads(db) as reads:
        async with asyncio.timeout(5):
            answers = await asyncio.gather(*(credentials.agent_for(token) for _ in range(100)))
            await _settled(credentials)
    assert answers == ["agent-a"] * 100
    assert len(reads) == 1


async def test_100_concurrent_requests_past_the_grace_wait_for_one_shared_read(
    db: Database, credentials: Credentials, cli: Credentials, clock: Clock
) -> None:
    token = (await cli.issue_agent_token("agent-a")).token
    assert await credentials.agent_for(token) == "agent-a"
    clock.now += CACHE_SECONDS + auth._REFRESH_GRACE + 0.1
    with token_reads(db) as reads:
        async with asyncio.timeout(5):
            answers = await asyncio.gather(*(credentials.agent_for(token) for _ in range(100)))
    assert answers == ["agent-a"] * 100
    assert len(reads) == 1


async def test_100_concurrent_first_uses_of_a_token_cause_one_read(
    db: Database, credentials: Credentials, cli: Credentials
) -> None:
    token = (await cli.issue_agent_token("agent-a")).token
    with token_reads(db) as reads:
        async with asyncio.timeout(5):
            answers = await asyncio.gather(*(credentials.agent_for(token) for _ in range(100)))
    assert answers == ["agent-a"] * 100
    assert len(reads) == 1


async def test_a_fresh_answer_is_used_without_reading_the_database(
    db: Database, credentials: Credentials, cli: Credentials, clock: Clock
) -> None:
    token = (await cli.issue_agent_token("agent-a")).token
    assert await credentials.agent_for(token) == "agent-a"
    with token_reads(db) as reads:
        for _ in range(50):
            clock.now += CACHE_SECONDS / 100
            assert await credentials.agent_for(token) == "agent-a"
    assert reads == []


async def test_a_revocation_elsewhere_is_honoured_within_the_cache_time_plus_the_refresh_grace(
    credentials: Credentials, cli: Credentials, clock: Clock
) -> None:
    issued = await cli.issue_agent_token("agent-r")
    assert await credentials.agent_for(issued.token) == "agent-r"
    read_at = clock.now
    await cli.revoke(token_id=issued.id)
    clock.now = read_at + CACHE_SECONDS - 0.01
    assert await credentials.agent_for(issued.token) == "agent-r"  # within the documented window
    clock.now = read_at + CACHE_SECONDS + auth._REFRESH_GRACE
    assert await credentials.agent_for(issued.token) is None
    assert await credentials.agent_for(issued.token) is None


async def test_a_request_in_the_grace_starts_the_refresh_that_ends_the_revoked_token(
    credentials: Credentials, cli: Credentials, clock: Clock
) -> None:
    issued = await cli.issue_agent_token("agent-r")
    assert await credentials.agent_for(issued.token) == "agent-r"
    await cli.revoke(token_id=issued.id)
    clock.now += CACHE_SECONDS + auth._REFRESH_GRACE / 2
    assert await credentials.agent_for(issued.token) == "agent-r"  # served while its refresh runs
    await _settled(credentials)
    assert await credentials.agent_for(issued.token) is None


async def test_an_idle_token_revoked_long_ago_is_refused_on_its_next_use(
    credentials: Credentials, cli: Credentials, clock: Clock
) -> None:
    """The stale answer is usable only near its read, not whenever the next request comes."""
    issued = await cli.issue_agent_token("agent-r")
    assert await credentials.agent_for(issued.token) == "agent-r"
    await cli.revoke(token_id=issued.id)
    clock.now += 3600
    assert await credentials.agent_for(issued.token) is None


async def test_a_revocation_in_this_process_is_honoured_at_once_even_by_a_read_already_running(
    db: Database, credentials: Credentials, clock: Clock
) -> None:
    issued = await credentials.issue_agent_token("agent-r")
    assert await credentials.agent_for(issued.token) == "agent-r"
    clock.now += CACHE_SECONDS + 0.1
    assert await credentials.agent_for(issued.token) == "agent-r"  # starts a refresh, not yet finished
    await credentials.revoke(token_id=issued.id)
    await _settled(credentials)
    assert await credentials.agent_for(issued.token) is None


async def test_an_unknown_token_is_remembered_so_repeating_it_reads_the_database_once(
    db: Database, credentials: Credentials
) -> None:
    with token_reads(db) as reads:
        for _ in range(20):
            assert await credentials.agent_for("alk_agent_made-up") is None
    assert len(reads) == 1


async def test_a_spray_of_random_tokens_is_bounded_in_reads_and_memory(
    db: Database, credentials: Credentials, cli: Credentials, clock: Clock
) -> None:
    token = (await cli.issue_agent_token("agent-a")).token
    assert await credentials.agent_for(token) == "agent-a"
    sprayed = [f"alk_agent_{secrets.token_urlsafe(32)}" for _ in range(2 * auth._NEGATIVE_SIZE)]
    with token_reads(db) as reads:
        async with asyncio.timeout(30):
            for chunk in range(0, len(sprayed), 500):
                clock.now += 1.0
                answers = await asyncio.gather(
                    *(credentials.agent_for(t) for t in sprayed[chunk : chunk + 500]), return_exceptions=True
                )
                # Past the budget the answer is "try again" (503), never a verdict on an unread token.
                assert {type(answer) for answer in answers} <= {type(None), auth.TokenLookupsBusy}
                assert await credentials.agent_for(token) == "agent-a"  # a cached token is unaffected
    seconds = len(sprayed) / 500
    assert len(reads) <= auth._MISS_BURST + auth._MISS_RATE * seconds + 2  # + the valid token's refreshes
    assert len(credentials._unknown) <= auth._NEGATIVE_SIZE


async def test_a_new_token_works_at_once(credentials: Credentials, cli: Credentials) -> None:
    assert await credentials.agent_for("alk_agent_not-yet") is None
    issued = await cli.issue_agent_token("agent-n")
    assert await credentials.agent_for(issued.token) == "agent-n"


async def test_without_a_cache_every_request_reads_the_database(db: Database, cli: Credentials) -> None:
    token = (await cli.issue_agent_token("agent-a")).token
    with token_reads(db) as reads:
        for _ in range(3):
            assert await cli.agent_for(token) == "agent-a"
    assert len(reads) == 3


async def _settled(credentials: Credentials) -> None:
    """Wait for the refreshes in flight (private state: the test is about their effect)."""
    while credentials._reads:
        await asyncio.gather(*(read for _, read in credentials._reads.values()), return_exceptions=True)


async def test_a_new_valid_token_during_a_spray_is_told_to_retry_never_that_it_is_unknown(
    credentials: Credentials, cli: Credentials, clock: Clock
) -> None:
    sprayed = [f"alk_agent_{secrets.token_urlsafe(32)}" for _ in range(auth._MISS_BURST)]
    assert set(await asyncio.gather(*(credentials.agent_for(t) for t in sprayed))) == {None}
    token = (await cli.issue_agent_token("agent-new")).token
    with pytest.raises(auth.TokenLookupsBusy):
        await credentials.agent_for(token)
    clock.now += 1.0  # the budget refills
    assert await credentials.agent_for(token) == "agent-new"
