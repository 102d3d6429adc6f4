"""Scoped grants: a reviewer's approval that also lets the same agent repeat the call for a while.

A reviewer approving a call may add "and allow identical calls from this agent for N minutes"
(scope `identical`: same agent, upstream, tool and canonical arguments hash as the approval), or,
where the rule offers it, "this tool for this agent for N minutes" (scope `tool`). The rule's
`grants` (`{"max_minutes": N, "scope": [...]}`, `app/policy/engine.py::GrantPolicy`) is stored with
the approval when it is parked, so what a reviewer may grant is what the rule said then.

- **Created in the deciding transaction** (`decisions.decide` calls `create`): the grant exists if
  and only if the approval it came with was committed; its audit step (`granted`) is on the
  approval's timeline. A grant request the rule does not permit (no `grants`, a scope it does not
  list, longer than `max_minutes`, a quorum rule, a rejection) refuses the whole decision with a
  reason: a reviewer never approves thinking they granted more, or less, than they did.
- **Consulted before parking** (`Grants.covering`), and only for a call whose policy decision is
  `approve` by a rule that offers grants: an allowed call never reaches here, and neither does an
  approve rule without `grants`, so those paths gain no database round trip.
- **Never broader than chosen, never across agents**: the lookup matches the agent, upstream and
  tool exactly, and the arguments hash too unless the grant is tool-wide; and the call must be
  decided by the rule the approval was parked under (its `policy_rule`).
- **Revocation is at once, everywhere**: every lookup reads the database (no cache), and an
  expired grant is dead by comparison with the clock, on every replica.

What it does not do: decide (that is `decisions.py`), forward the call (the gateway does, and
audits it with the grant's id), or word anything (`wording.py`).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from app.approvals.ledger import Change, Ledger
from app.approvals.model import Approval
from app.approvals.wording import (
    grant_already_revoked,
    grant_given,
    grant_not_found,
    grant_not_offered,
    grant_on_quorum,
    grant_revoked,
    grant_scope_refused,
    grant_too_long,
    grant_with_rejection,
)
from app.policy.engine import GrantScope
from app.store import approvals as approval_store
from app.store import grants as grant_store
from app.store.approvals import ApprovalRow
from app.store.grants import GrantRow

GRANT_SCOPES: Final[tuple[GrantScope, ...]] = ("identical", "tool")
_DURATION: Final = re.compile(r"\s*(\d{1,5})\s*(m|min|h)?\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class GrantRequest:
    """What a reviewer asks for with an approval: how long, and what it covers."""

    minutes: int
    scope: GrantScope = "identical"


@dataclass(frozen=True, slots=True)
class Grant:
    id: str
    agent: str
    upstream: str
    tool: str
    args_hash: str | None
    created_by: str
    approval_id: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    revoked_by: str | None

    @property
    def scope(self) -> GrantScope:
        return "tool" if self.args_hash is None else "identical"

    @classmethod
    def from_row(cls, row: GrantRow) -> Grant:
        return cls(**{name: getattr(row, name) for name in cls.__slots__})


class GrantError(Exception):
    """A grant that could not be revoked, and why (one sentence)."""

    status_code = 404


class GrantAlreadyRevoked(GrantError):
    status_code = 409


def minutes_of(text: str) -> int:
    """`30`, `30m`, `2h` as minutes.

    Raises:
        ValueError: anything else.
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 30m or 2h")
    number, unit = int(match.group(1)), (match.group(2) or "m").lower()
    return number * 60 if unit == "h" else number


def scope_of(text: str) -> GrantScope | None:
    """The scope named `text`, or None."""
    return next((scope for scope in GRANT_SCOPES if scope == text), None)


def refusal(approval: Approval, request: GrantRequest) -> str | None:
    """Why `request` may not come with approving `approval` (its rule as stored), or None. Pure."""
    policy = approval.grant_policy
    if approval.needs_quorum:
        return grant_on_quorum(approval)
    if policy is None:
        return grant_not_offered(approval)
    if request.scope not in policy.scopes:
        return grant_scope_refused(approval, request.scope, policy.scopes)
    if not 1 <= request.minutes <= policy.max_minutes:
        return grant_too_long(approval, request.minutes, policy.max_minutes)
    return None


def rejection_refusal() -> str:
    return grant_with_rejection()


async def create(change: Change, approved: ApprovalRow, request: GrantRequest, *, reviewer: str, now: float) -> Grant:
    """Write the grant that comes with `approved`, inside the transaction that approved it."""
    row = GrantRow(
        id="grt_" + secrets.token_urlsafe(12),
        agent=approved.agent,
        upstream=approved.upstream,
        tool=approved.tool,
        args_hash=approved.args_hash if request.scope == "identical" else None,
        created_by=reviewer,
        approval_id=approved.id,
        created_at=now,
        expires_at=now + request.minutes * 60.0,
        revoked_at=None,
        revoked_by=None,
    )
    await grant_store.insert(change.conn, row)
    detail = grant_given(grant_id=row.id, scope=request.scope, minutes=request.minutes)
    await change.audit.record_step(
        change.conn, event="granted", approval=approved, now=now, actor=reviewer, detail=detail
    )
    return Grant.from_row(row)


class Grants:
    """Read and revoke grants; find the one covering a call. Every read goes to the database."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def covering(self, *, agent: str, upstream: str, tool: str, args_hash: str, rule: str) -> Grant | None:
        """The live grant that lets this agent make this call now, under policy rule `rule`, or None.

        `rule` is the matching rule's id or position, as approvals record it (`policy_rule`): a grant
        given under one rule never covers a call another rule decides (a stricter one below a
        different `when`, or the same tool after a policy edit moved it).
        """
        now = self._ledger.clock.now()
        async with self._ledger.db.read() as conn:
            row = await grant_store.covering(
                conn, agent=agent, upstream=upstream, tool=tool, args_hash=args_hash, rule=rule, now=now
            )
        return None if row is None else Grant.from_row(row)

    async def live(self) -> list[Grant]:
        """Grants neither expired nor revoked, newest first."""
        async with self._ledger.db.read() as conn:
            rows = await grant_store.live(conn, now=self._ledger.clock.now())
        return [Grant.from_row(row) for row in rows]

    async def get(self, grant_id: str) -> Grant | None:
        async with self._ledger.db.read() as conn:
            row = await grant_store.get(conn, grant_id)
        return None if row is None else Grant.from_row(row)

    async def of_approval(self, approval_id: str) -> Grant | None:
        """The grant that came with an approval, if any."""
        async with self._ledger.db.read() as conn:
            row = await grant_store.of_approval(conn, approval_id)
        return None if row is None else Grant.from_row(row)

    async def revoke(self, grant_id: str, *, by: str) -> Grant:
        """Revoke a grant now; the next lookup on any replica no longer finds it.

        Raises:
            GrantError: no such grant.
            GrantAlreadyRevoked: revoked before (a replayed or concurrent revoke changes nothing).
        """
        now = self._ledger.clock.now()
        async with self._ledger.db.write() as conn:
            if not await grant_store.revoke(conn, grant_id, by=by, now=now):
                raise await _why_not_revoked(conn, grant_id)
            row = await grant_store.get(conn, grant_id)
            assert row is not None
            approval = await approval_store.get(conn, row.approval_id)
            if approval is not None:
                detail = grant_revoked(grant_id=grant_id, by=by)
                await self._ledger.audit.record_step(
                    conn, event="grant_revoked", approval=approval, now=now, actor=by, detail=detail
                )
        return Grant.from_row(row)


async def _why_not_revoked(conn: AsyncConnection, grant_id: str) -> GrantError:
    row = await grant_store.get(conn, grant_id)
    if row is None:
        return GrantError(grant_not_found(grant_id))
    return GrantAlreadyRevoked(grant_already_revoked(grant_id=grant_id, by=row.revoked_by, at=row.revoked_at))
