"""Credentials: issue agent and reviewer tokens, and verify them on every request.

Tokens are 256-bit random strings with a readable prefix (`alk_agent_…`, `alk_rev_…`) so secret
scanners and humans can tell them apart; only their SHA-256 is stored. Agent and reviewer tokens
live in separate tables, so an agent token can never pass as a reviewer's (and cannot decide).

Verification is on every MCP request, so positive answers are cached in memory for
`token_cache_seconds` (default 5 s): a revocation made by another process (the CLI, another
replica) takes effect within that time; one made through this process's own `revoke` at once.
Unknown tokens are not cached, so a freshly issued token works immediately.

Names are stored as given, but one identity has one spelling: issuing a token for an agent, or
adding a reviewer, whose name matches an existing agent or reviewer name spelled differently
(after NFKC and case folding, `app/identity.py`) is refused with `NameCollision`. The same
spelling may be both an agent and a reviewer (then that reviewer never approves that agent's
calls).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from app.errors import AirlockError
from app.identity import identity_key
from app.reveal import reveal
from app.store import tokens as token_store
from app.store.db import Database

AGENT_TOKEN_PREFIX: Final = "alk_agent_"
REVIEWER_TOKEN_PREFIX: Final = "alk_rev_"
WWW_AUTHENTICATE: Final = 'Bearer realm="airlock"'


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
            raise NameCollision(f"{reveal(name, line=True)!r} is the same identity as the existing name "
                                f"{reveal(existing, line=True)!r} (names are compared ignoring case and "
                                "Unicode compatibility forms); use that spelling")


@dataclass(frozen=True, slots=True)
class IssuedToken:
    id: int
    name: str
    token: str


class Credentials:
    """Issues and verifies tokens against the database, with a short positive cache for agents."""

    def __init__(self, db: Database, *, cache_seconds: float = 5.0) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        self._agents: dict[str, tuple[str, float]] = {}

    async def agent_for(self, token: str) -> str | None:
        """The agent identity of a bearer token, or None when it is unknown or revoked."""
        digest = token_hash(token)
        cached = self._agents.get(digest)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self._db.read() as conn:
            agent = await token_store.agent_for_token(conn, digest)
        if agent is None:
            self._agents.pop(digest, None)
        elif self._cache_seconds > 0:
            self._agents[digest] = (agent, now + self._cache_seconds)
        return agent

    async def reviewer_for(self, token: str) -> str | None:
        """The reviewer a token belongs to (never cached: decisions are rare and must see revocations)."""
        async with self._db.read() as conn:
            return await token_store.reviewer_for_token(conn, token_hash(token))

    async def issue_agent_token(self, agent: str, *, label: str | None = None) -> IssuedToken:
        """A new token for `agent`. Raises `NameCollision` (see the module docstring)."""
        token = new_token(AGENT_TOKEN_PREFIX)
        async with self._db.write() as conn:
            await check_spelling(conn, agent)
            token_id = await token_store.insert_agent_token(
                conn, agent=agent, token_hash=token_hash(token), prefix=token[: len(AGENT_TOKEN_PREFIX) + 4],
                label=label, now=time.time())
        return IssuedToken(token_id, agent, token)

    async def revoke(self, *, token_id: int | None = None, agent: str | None = None) -> int:
        async with self._db.write() as conn:
            count = await token_store.revoke_agent_tokens(conn, now=time.time(), token_id=token_id, agent=agent)
        self._agents.clear()
        return count

    async def add_reviewer(self, name: str, *, slack_user_id: str | None = None) -> IssuedToken:
        """A new reviewer and their token. Raises `NameCollision` (see the module docstring)."""
        token = new_token(REVIEWER_TOKEN_PREFIX)
        async with self._db.write() as conn:
            await check_spelling(conn, name)
            reviewer_id = await token_store.insert_reviewer(
                conn, name=name, token_hash=token_hash(token), slack_user_id=slack_user_id, now=time.time())
        return IssuedToken(reviewer_id, name, token)

    async def rotate_reviewer_token(self, name: str) -> IssuedToken | None:
        token = new_token(REVIEWER_TOKEN_PREFIX)
        async with self._db.write() as conn:
            if not await token_store.set_reviewer_token(conn, name=name, token_hash=token_hash(token)):
                return None
            row = await token_store.reviewer_named(conn, name)
        assert row is not None
        return IssuedToken(row.id, name, token)
