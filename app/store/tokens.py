"""Queries for credentials: agent tokens and reviewers. Only SHA-256 hashes of tokens are stored."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.models import agent_tokens, reviewers


@dataclass(frozen=True, slots=True)
class AgentTokenRow:
    id: int
    agent: str
    prefix: str
    label: str | None
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class ReviewerRow:
    id: int
    name: str
    slack_user_id: str | None
    created_at: float
    disabled_at: float | None


async def insert_agent_token(
    conn: AsyncConnection, *, agent: str, token_hash: str, prefix: str, label: str | None, now: float
) -> int:
    result = await conn.execute(
        agent_tokens.insert().values(agent=agent, token_hash=token_hash, prefix=prefix, label=label, created_at=now)
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def agent_for_token(conn: AsyncConnection, token_hash: str) -> str | None:
    """The agent a live (not revoked) token belongs to, or None."""
    row = (
        await conn.execute(
            select(agent_tokens.c.agent).where(
                agent_tokens.c.token_hash == token_hash, agent_tokens.c.revoked_at.is_(None)
            )
        )
    ).first()
    return None if row is None else str(row.agent)


async def list_agent_tokens(
    conn: AsyncConnection, *, agent: str | None = None, include_revoked: bool = False
) -> list[AgentTokenRow]:
    query = select(
        agent_tokens.c.id,
        agent_tokens.c.agent,
        agent_tokens.c.prefix,
        agent_tokens.c.label,
        agent_tokens.c.created_at,
        agent_tokens.c.revoked_at,
    ).order_by(agent_tokens.c.id)
    if agent is not None:
        query = query.where(agent_tokens.c.agent == agent)
    if not include_revoked:
        query = query.where(agent_tokens.c.revoked_at.is_(None))
    return [AgentTokenRow(**row._mapping) for row in await conn.execute(query)]


async def revoke_agent_tokens(
    conn: AsyncConnection, *, now: float, token_id: int | None = None, agent: str | None = None
) -> int:
    """Revoke one token (by id) or every token of an agent. Returns how many were revoked."""
    query = update(agent_tokens).where(agent_tokens.c.revoked_at.is_(None)).values(revoked_at=now)
    if token_id is not None:
        query = query.where(agent_tokens.c.id == token_id)
    if agent is not None:
        query = query.where(agent_tokens.c.agent == agent)
    return (await conn.execute(query)).rowcount


async def identity_names(conn: AsyncConnection) -> set[str]:
    """Every agent name (revoked tokens included) and every reviewer name, as stored."""
    agents = await conn.execute(select(agent_tokens.c.agent).distinct())
    names = await conn.execute(select(reviewers.c.name))
    return {str(row[0]) for row in agents} | {str(row[0]) for row in names}


async def insert_reviewer(
    conn: AsyncConnection, *, name: str, token_hash: str, slack_user_id: str | None, now: float
) -> int:
    result = await conn.execute(
        reviewers.insert().values(name=name, token_hash=token_hash, slack_user_id=slack_user_id, created_at=now)
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def reviewer_for_token(conn: AsyncConnection, token_hash: str) -> str | None:
    row = (
        await conn.execute(
            select(reviewers.c.name).where(reviewers.c.token_hash == token_hash, reviewers.c.disabled_at.is_(None))
        )
    ).first()
    return None if row is None else str(row.name)


async def reviewer_for_session(conn: AsyncConnection, token_hash: str, signed_in_at: float) -> str | None:
    """The reviewer an inbox session signed in at `signed_in_at` with this token belongs to, if it still counts."""
    row = (
        await conn.execute(
            select(reviewers.c.name, reviewers.c.signed_out_at).where(
                reviewers.c.token_hash == token_hash, reviewers.c.disabled_at.is_(None)
            )
        )
    ).first()
    if row is None or (row.signed_out_at is not None and signed_in_at <= row.signed_out_at):
        return None
    return str(row.name)


async def sign_out_reviewer(conn: AsyncConnection, token_hash: str, now: float) -> None:
    """End every inbox session signed in with this token until now."""
    await conn.execute(update(reviewers).where(reviewers.c.token_hash == token_hash).values(signed_out_at=now))


async def reviewer_named(conn: AsyncConnection, name: str) -> ReviewerRow | None:
    row = (
        await conn.execute(
            select(
                reviewers.c.id,
                reviewers.c.name,
                reviewers.c.slack_user_id,
                reviewers.c.created_at,
                reviewers.c.disabled_at,
            ).where(reviewers.c.name == name)
        )
    ).first()
    return None if row is None else ReviewerRow(**row._mapping)


async def reviewer_for_slack_user(conn: AsyncConnection, slack_user_id: str) -> str | None:
    row = (
        await conn.execute(
            select(reviewers.c.name).where(
                reviewers.c.slack_user_id == slack_user_id, reviewers.c.disabled_at.is_(None)
            )
        )
    ).first()
    return None if row is None else str(row.name)


async def list_reviewers(conn: AsyncConnection) -> list[ReviewerRow]:
    rows = await conn.execute(
        select(
            reviewers.c.id, reviewers.c.name, reviewers.c.slack_user_id, reviewers.c.created_at, reviewers.c.disabled_at
        ).order_by(reviewers.c.name)
    )
    return [ReviewerRow(**row._mapping) for row in rows]


async def set_reviewer_token(conn: AsyncConnection, *, name: str, token_hash: str) -> bool:
    """Give a reviewer a new token hash (a disabled reviewer stays disabled)."""
    result = await conn.execute(update(reviewers).where(reviewers.c.name == name).values(token_hash=token_hash))
    return result.rowcount == 1


async def enable_reviewer(conn: AsyncConnection, *, name: str) -> bool:
    result = await conn.execute(
        update(reviewers).where(reviewers.c.name == name, reviewers.c.disabled_at.is_not(None)).values(disabled_at=None)
    )
    return result.rowcount == 1


async def disable_reviewer(conn: AsyncConnection, *, name: str, now: float) -> bool:
    result = await conn.execute(
        update(reviewers).where(reviewers.c.name == name, reviewers.c.disabled_at.is_(None)).values(disabled_at=now)
    )
    return result.rowcount == 1


@dataclass(frozen=True, slots=True)
class ReviewerCredential:
    name: str
    token_hash: str
    disabled_at: float | None


async def reviewer_credential(conn: AsyncConnection, name: str) -> ReviewerCredential | None:
    """A reviewer's stored token hash (what an inbox session carries) and whether they are disabled."""
    row = (
        await conn.execute(
            select(reviewers.c.name, reviewers.c.token_hash, reviewers.c.disabled_at).where(reviewers.c.name == name)
        )
    ).first()
    return None if row is None else ReviewerCredential(str(row.name), str(row.token_hash), row.disabled_at)
