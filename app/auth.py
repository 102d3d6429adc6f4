"""Credentials: issue agent and reviewer tokens, and verify them on every request.

Tokens are 256-bit random strings with a readable prefix (`alk_agent_…`, `alk_rev_…`) so secret
scanners and humans can tell them apart; only their SHA-256 is stored. Agent and reviewer tokens
live in separate tables, so an agent token can never pass as a reviewer's (and cannot decide).

Verification is on every MCP request, so answers are cached in memory (issue 12: "no database
round trip on an allowed call's path in steady state"). With `token_cache_seconds` = T > 0:

- A token's answer is *fresh* for T after the read that produced it began. The first request
  after that starts one refresh for that token hash (single flight); every request, that one
  included, keeps the cached answer while the refresh runs, but only until T + `_REFRESH_GRACE`
  (1 s) after the previous read began; past that, requests wait for the refresh instead. So the
  database sees at most one read per live token per T, however many requests are in flight, and
  an expiry never sends all of them to the database at once.
- **Revocation bound.** A revocation committed at time r by another process (the CLI, another
  replica) is honoured by every request that arrives after r + T + 1 s: an accepted answer always
  comes from a read that began before r, used at most T + 1 s after that read began. One made
  through this process's own `revoke` takes effect at once (it drops every cached answer; a
  refresh already running answers only the requests that were waiting for it, and is not kept).
- Unknown tokens (never issued, or revoked) are remembered for `_NEGATIVE_SECONDS` in an LRU of
  at most `_NEGATIVE_SIZE` hashes. This cannot delay a new token: tokens are 256-bit random, so
  none was presented before it was issued, and a revoked token never becomes valid again.
- Lookups of tokens in neither cache are rate limited (a bucket of `_MISS_BURST`, refilled at
  `_MISS_RATE` a second): an attacker spraying random tokens costs at most that many database
  reads a second and that much memory. A request that finds the bucket empty raises
  `TokenLookupsBusy` without a read (logged), which the gateway answers 503 with `Retry-After`:
  "try again", never "your token is invalid", so the first use of a new valid token during such
  a spray is delayed, not refused as unknown. Tokens already cached, valid or not, are unaffected.

With T = 0 (tests, the CLI) nothing is cached: every request reads the database.

Names are stored as given, but one identity has one spelling: issuing a token for an agent, or
adding a reviewer, whose name matches an existing agent or reviewer name spelled differently
(after NFKC and case folding, `app/identity.py`) is refused with `NameCollision`. The same
spelling may be both an agent and a reviewer (then that reviewer never approves that agent's
calls).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from app.errors import AirlockError
from app.identity import identity_key
from app.reveal import reveal
from app.store import tokens as token_store
from app.store.db import Database

STATIC_TOKEN_PREFIX: Final = "alk_"
"""Airlock's own tokens; any other bearer token is an OAuth access token when `[oauth]` is on."""
AGENT_TOKEN_PREFIX: Final = "alk_agent_"
REVIEWER_TOKEN_PREFIX: Final = "alk_rev_"
WWW_AUTHENTICATE: Final = 'Bearer realm="airlock"'

logger = logging.getLogger("airlock.auth")

_REFRESH_GRACE: Final = 1.0
"""Seconds past `token_cache_seconds` a cached answer may still be used while its refresh runs."""
_KNOWN_SIZE: Final = 100_000
_NEGATIVE_SECONDS: Final = 60.0
_NEGATIVE_SIZE: Final = 10_000
_MISS_RATE: Final = 50
"""Database reads a second, sustained, for tokens in neither cache."""
_MISS_BURST: Final = 100


class TokenLookupsBusy(AirlockError):
    """A token in neither cache cannot be looked up now (the unknown-token budget is spent): retry."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or " " in value:
        return None
    return value


class NameCollision(AirlockError):
    """A new agent or reviewer name that is an existing identity spelled differently."""


async def check_spelling(conn: AsyncConnection, name: str) -> None:
    """Refuse `name` when an existing agent or reviewer is the same identity under another spelling.

    Raises:
        NameCollision: with the existing spelling to use instead.
    """
    key = identity_key(name)
    for existing in sorted(await token_store.identity_names(conn)):
        if existing != name and identity_key(existing) == key:
            raise NameCollision(
                f"{reveal(name, line=True)!r} is the same identity as the existing name "
                f"{reveal(existing, line=True)!r} (names are compared ignoring case and "
                "Unicode compatibility forms); use that spelling"
            )


@dataclass(frozen=True, slots=True)
class _Known:
    """A live token's agent, and when the read that found it began (the clock's time)."""

    agent: str
    read_at: float


def _remember(cache: OrderedDict[str, Any], key: str, value: Any, size: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    id: int
    name: str
    token: str


class Credentials:
    """Issues and verifies tokens against the database, with the agent-token cache described above."""

    def __init__(
        self, db: Database, *, cache_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Args:
        clock: monotonic seconds; tests pass a virtual clock.
        """
        self._db = db
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()
        """Hashes known not to be live tokens, with when that answer is forgotten."""
        self._reads: dict[str, tuple[int, asyncio.Future[_Known | None]]] = {}
        """The one read in flight per token hash (single flight), with the generation it began in."""
        self._generation = 0
        """Bumped by `revoke`: a read that began before it must not fill the cache."""
        self._miss_budget = float(_MISS_BURST)
        self._miss_refilled = clock()
        self._misses_refused = 0

    async def agent_for(self, token: str) -> str | None:
        """The agent identity of a bearer token, or None when it is unknown or revoked."""
        digest = token_hash(token)
        if self._cache_seconds <= 0:
            return await self._read_agent(digest)
        now = self._clock()
        known = self._known.get(digest)
        if known is not None:
            if now - known.read_at < self._cache_seconds:
                return known.agent
            read = self._read_once(digest)
            if now - known.read_at < self._cache_seconds + _REFRESH_GRACE:
                return known.agent
            answer = await asyncio.shield(read)
            return None if answer is None else answer.agent
        forget_at = self._unknown.get(digest)
        if forget_at is not None and now < forget_at:
            return None
        if self._current_read(digest) is None and not self._take_miss_budget(now):
            raise TokenLookupsBusy("too many lookups of unknown tokens at the moment; try again in a second")
        answer = await asyncio.shield(self._read_once(digest))
        return None if answer is None else answer.agent

    def _read_once(self, digest: str) -> asyncio.Future[_Known | None]:
        """The read in flight for `digest`, started if there is none."""
        read = self._current_read(digest)
        if read is None:
            read = asyncio.ensure_future(self._refresh(digest, self._generation))
            self._reads[digest] = (self._generation, read)
            read.add_done_callback(lambda done: self._read_done(digest, done))
        return read

    def _current_read(self, digest: str) -> asyncio.Future[_Known | None] | None:
        """The read in flight for `digest`, unless it began before the last `revoke`."""
        in_flight = self._reads.get(digest)
        return in_flight[1] if in_flight is not None and in_flight[0] == self._generation else None

    async def _refresh(self, digest: str, generation: int) -> _Known | None:
        read_at = self._clock()
        agent = await self._read_agent(digest)
        if generation != self._generation:
            return None if agent is None else _Known(agent, read_at)  # revoked meanwhile: answer, don't keep
        if agent is None:
            self._known.pop(digest, None)
            _remember(self._unknown, digest, read_at + _NEGATIVE_SECONDS, _NEGATIVE_SIZE)
            return None
        known = _Known(agent, read_at)
        self._unknown.pop(digest, None)
        _remember(self._known, digest, known, _KNOWN_SIZE)
        return known

    def _read_done(self, digest: str, read: asyncio.Future[_Known | None]) -> None:
        in_flight = self._reads.get(digest)
        if in_flight is not None and in_flight[1] is read:
            del self._reads[digest]
        if not read.cancelled() and read.exception() is not None:
            # Waiters get the exception; requests served from the cache meanwhile never see it.
            logger.warning("token lookup failed: %s", read.exception())

    def _take_miss_budget(self, now: float) -> bool:
        """One database read for a token in neither cache, if the bucket allows it."""
        self._miss_budget = min(float(_MISS_BURST), self._miss_budget + (now - self._miss_refilled) * _MISS_RATE)
        self._miss_refilled = now
        if self._miss_budget >= 1:
            self._miss_budget -= 1
            return True
        self._misses_refused += 1
        if self._misses_refused == 1 or self._misses_refused % 1000 == 0:
            logger.warning(
                "unknown-token lookups over %d/s: %d answered 'try again' without a database read "
                "(someone may be guessing tokens)",
                _MISS_RATE,
                self._misses_refused,
            )
        return False

    async def _read_agent(self, digest: str) -> str | None:
        async with self._db.read() as conn:
            return await token_store.agent_for_token(conn, digest)

    async def reviewer_for(self, token: str) -> str | None:
        """The reviewer a token belongs to (never cached: decisions are rare and must see revocations)."""
        async with self._db.read() as conn:
            return await token_store.reviewer_for_token(conn, token_hash(token))

    async def reviewer_enabled(self, name: str) -> bool:
        """Whether `name` is a reviewer here and not disabled (never cached, like `reviewer_for`)."""
        async with self._db.read() as conn:
            row = await token_store.reviewer_named(conn, name)
        return row is not None and row.disabled_at is None

    async def issue_agent_token(self, agent: str, *, label: str | None = None) -> IssuedToken:
        """A new token for `agent`. Raises `NameCollision` (see the module docstring)."""
        token = new_token(AGENT_TOKEN_PREFIX)
        async with self._db.write() as conn:
            await check_spelling(conn, agent)
            token_id = await token_store.insert_agent_token(
                conn,
                agent=agent,
                token_hash=token_hash(token),
                prefix=token[: len(AGENT_TOKEN_PREFIX) + 4],
                label=label,
                now=time.time(),
            )
        self._unknown.pop(token_hash(token), None)  # cannot be there (see the module docstring); cheap to be sure
        return IssuedToken(token_id, agent, token)

    async def revoke(self, *, token_id: int | None = None, agent: str | None = None) -> int:
        async with self._db.write() as conn:
            count = await token_store.revoke_agent_tokens(conn, now=time.time(), token_id=token_id, agent=agent)
        self._generation += 1
        self._known.clear()
        return count

    async def add_reviewer(self, name: str, *, slack_user_id: str | None = None) -> IssuedToken:
        """A new reviewer and their token. Raises `NameCollision` (see the module docstring)."""
        token = new_token(REVIEWER_TOKEN_PREFIX)
        async with self._db.write() as conn:
            await check_spelling(conn, name)
            reviewer_id = await token_store.insert_reviewer(
                conn, name=name, token_hash=token_hash(token), slack_user_id=slack_user_id, now=time.time()
            )
        return IssuedToken(reviewer_id, name, token)

    async def rotate_reviewer_token(self, name: str) -> IssuedToken | None:
        token = new_token(REVIEWER_TOKEN_PREFIX)
        async with self._db.write() as conn:
            if not await token_store.set_reviewer_token(conn, name=name, token_hash=token_hash(token)):
                return None
            row = await token_store.reviewer_named(conn, name)
        assert row is not None
        return IssuedToken(row.id, name, token)
