"""The pending-approval queue: park a call durably, attach identical calls, withdraw, expire, deliver.

Parking writes everything needed to run the call later, byte for byte, before anyone is told:
the exact `params` text of the request (so the executor sends what was judged), the MCP headers
that described it, the agent, era and session, the JSON-RPC id and progress token, the policy's
verdict, and the SHA-256 of the canonical arguments that binds the approval to this call.

An identical call (same agent, upstream, tool and argument hash) attaches to the newest approval
that is still open or whose outcome the agent has not received yet, instead of piling up
duplicates; a partial unique index keeps that true when two replicas park the same call at once.

**Replays** (issue 10, class 2: an outcome lost on the way must never lead to a second
execution). An outcome counts as delivered once it is written to the agent's stream, but a
proxy or a flaky network can still lose it, and the agent's identical retry would then park a
new approval for a call that already ran. So an identical call within `result_retention_seconds`
of a delivered outcome of a call that *ran* (see `approval_store.ran`: completed, tool error,
result too large, upstream error, outcome_unknown) gets that stored outcome again, marked
`replay` in its `_meta` and as a `replayed` step in the audit log, and no new approval. For a
2026-07-28 continuation round, "identical" also means the same `requestState` and
`inputResponses`, so the repeat that continues an approved `input_required` round is not a replay
of it. Outcomes of calls that did not run (rejected, expired, withdrawn, failed before reaching
the upstream) are not replayed: an identical call after one of those is a new call for a human.
The price: to run the same call deliberately again within the retention window, an agent changes
its arguments, or the operator lowers `result_retention_seconds`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.approvals.continuation import Continuation, continues
from app.approvals.ledger import Change, Ledger
from app.approvals.model import Approval, grant_policy_json
from app.config import ApprovalSettings
from app.jsonrpc import canonical_json
from app.policy.engine import Decision
from app.protocol import Era
from app.store import approvals as approval_store
from app.store import streams as stream_store
from app.store.approvals import ApprovalRow
from app.store.streams import StoredEvent, StreamRow
from app.types import RequestId

_CANCELLATION_MEMORY_SECONDS: Final = 3600.0
"""How long a cancellation is remembered for a call it overtook (it is parked within seconds)."""


class TooManyPending(Exception):
    def __init__(self, agent: str, limit: int) -> None:
        super().__init__(f"agent {agent!r} already has {limit} calls waiting for review")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class ParkRequest:
    upstream: str
    tool: str
    agent: str
    arguments: dict[str, Any]
    args_hash: str
    params_text: str
    forward_headers: dict[str, str]
    era: Era
    protocol_version: str
    session_id: str | None
    request_id: RequestId
    progress_token: str | int | None
    decision: Decision
    policy_version: str
    hold_seconds: float
    """How long this request may be held before it is answered "pending"."""
    continuation: Continuation | None = None
    """What a 2026-07-28 repeat of an `input_required` round carries (see `continuation.py`)."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """A held request's claim on an approval: the approval as parked, and the request's own stream."""

    approval: Approval
    stream: StreamRow
    created: bool
    attach_seq: int
    priming_seq: int | None
    era: Era
    """The era of the request that attached (not necessarily the approval's)."""
    replayed: bool = False
    """The approval's outcome was delivered before; this request gets it again (see the module docstring)."""


def _same_round(stored_params: str, params_text: str) -> bool:
    """Whether two calls with the same arguments are the same round: the same 2026-07-28 continuation
    (`requestState` and `inputResponses`), or both first rounds."""
    stored, sent = json.loads(stored_params), json.loads(params_text)
    return all(
        canonical_json(stored.get(key)) == canonical_json(sent.get(key)) for key in ("requestState", "inputResponses")
    )


def new_approval_id() -> str:
    return "apr_" + secrets.token_urlsafe(12)


def new_stream_id() -> str:
    return secrets.token_urlsafe(18)


class ApprovalQueue:
    def __init__(self, ledger: Ledger, settings: ApprovalSettings) -> None:
        self._ledger = ledger
        self._settings = settings

    async def park(self, request: ParkRequest, *, priming: bool) -> Attachment:
        """Attach to an identical open approval, or park a new one; durable when this returns.

        Args:
            request: the call and the policy's verdict.
            priming: store a priming event (an id with empty data) as the stream's first event.

        Raises:
            TooManyPending: the agent already has `max_pending_per_agent` calls waiting.
        """
        for attempt in range(3):
            try:
                attachment = await self._park_once(request, priming)
                break
            except IntegrityError:
                # A concurrent identical call (maybe on another replica) parked first; attach to it.
                if attempt == 2:
                    raise
        if request.session_id is not None and request.era is Era.HANDSHAKE:
            await self._withdraw_if_cancelled(attachment, request.session_id)
        return attachment

    async def cancel_request(self, session_id: str, request_id: RequestId, *, by: str, reason: str) -> None:
        """A handshake-era client cancelled a request: withdraw what it holds, now or once it is parked.

        The cancellation may overtake the call (still being judged or parked), so it is recorded
        before the held streams are looked up, and `park` looks for it after its own commit: in
        any order of the two, one of them sees the other.
        """
        now = self._ledger.clock.now()
        key = json.dumps(request_id)
        async with self._ledger.db.write() as conn:
            await stream_store.record_cancellation(conn, session_id, key, now)
            await stream_store.purge_cancellations(conn, now - _CANCELLATION_MEMORY_SECONDS)
        async with self._ledger.db.read() as conn:
            held = await stream_store.streams_for_request(conn, session_id, key)
        for stream in held:
            await self.withdraw(stream.approval_id, by=by, delivered=True, reason=reason)

    async def _withdraw_if_cancelled(self, attachment: Attachment, session_id: str) -> None:
        async with self._ledger.db.read() as conn:
            cancelled = await stream_store.was_cancelled(conn, session_id, attachment.stream.request_id)
        if cancelled:
            await self.withdraw(
                attachment.approval.id,
                by=attachment.stream.agent,
                delivered=True,
                reason="the client cancelled the request",
            )

    async def _park_once(self, request: ParkRequest, priming: bool) -> Attachment:
        now = self._ledger.clock.now()
        async with self._ledger.change() as change:
            conn = change.conn
            if self._ledger.db.is_postgres:
                await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:agent))"), {"agent": request.agent})
            existing = await approval_store.find_attachable(
                conn,
                agent=request.agent,
                upstream=request.upstream,
                tool=request.tool,
                args_hash=request.args_hash,
                now=now,
                retention=self._settings.result_retention_seconds,
            )
            replayed = None if existing is not None else await self._replayable(conn, request, now)
            if existing is not None:
                seq = await approval_store.bump_attach(conn, existing.id, now)
                approval, created = existing, False
                await self._ledger.audit.record_step(
                    conn, event="attached", approval=existing, now=now, actor=request.agent
                )
            elif replayed is not None:
                approval, created, seq = replayed, False, replayed.attach_seq
                await self._ledger.audit.record_step(
                    conn,
                    event="replayed",
                    approval=replayed,
                    now=now,
                    actor=request.agent,
                    outcome=replayed.status,
                    detail="an identical call got the stored outcome again; it did not run again",
                )
            else:
                predecessor = await self._continued(conn, request, now)
                if predecessor is not None:
                    approval = await self._insert_continuation(change, request, predecessor, now)
                else:
                    approval = await self._insert(change, request, now)
                seq, created = 0, True
            stream = StreamRow(
                id=new_stream_id(),
                approval_id=approval.id,
                agent=request.agent,
                session_id=request.session_id,
                request_id=json.dumps(request.request_id),
                progress_token=None if request.progress_token is None else json.dumps(request.progress_token),
                hold_until=now + request.hold_seconds,
                created_at=now,
            )
            await stream_store.insert_stream(conn, stream)
            priming_seq = await stream_store.append_event(conn, stream.id, "", now) if priming else None
        return Attachment(
            Approval.from_row(approval), stream, created, seq, priming_seq, request.era, replayed=replayed is not None
        )

    async def _replayable(self, conn: AsyncConnection, request: ParkRequest, now: float) -> ApprovalRow | None:
        """The newest delivered outcome of this very call that ran, within the retention window."""
        candidates = await approval_store.find_replayable(
            conn,
            agent=request.agent,
            upstream=request.upstream,
            tool=request.tool,
            args_hash=request.args_hash,
            since=now - self._settings.result_retention_seconds,
        )
        return next((row for row in candidates if _same_round(row.params, request.params_text)), None)

    async def _continued(self, conn: AsyncConnection, request: ParkRequest, now: float) -> ApprovalRow | None:
        """The approved `input_required` round this request continues, if it is one."""
        if request.continuation is None or request.era is not Era.MODERN:
            return None
        predecessor = await approval_store.find_continuable(
            conn,
            agent=request.agent,
            upstream=request.upstream,
            tool=request.tool,
            args_hash=request.args_hash,
            since=now - self._settings.result_retention_seconds,
        )
        if predecessor is None or not continues(predecessor, request.continuation):
            return None
        return predecessor

    async def _insert(self, change: Change, request: ParkRequest, now: float) -> ApprovalRow:
        conn = change.conn
        if await approval_store.count_pending(conn, request.agent) >= self._settings.max_pending_per_agent:
            raise TooManyPending(request.agent, self._settings.max_pending_per_agent)
        row = await self._insert_row(
            conn, self._values(request, now), now=now, actor=request.agent, detail=request.decision.reason
        )
        change.touch(row.id, parked=True)
        return row

    async def _insert_continuation(
        self, change: Change, request: ParkRequest, predecessor: ApprovalRow, now: float
    ) -> ApprovalRow:
        """Insert the repeat of an approved `input_required` round, approved by that round's decision.

        Raises:
            IntegrityError: another request continued `predecessor` first (the caller re-attaches).
        """
        values = {
            **self._values(request, now),
            "status": "approved",
            "continues": predecessor.id,
            "decided_by": predecessor.decided_by,
            "decided_via": "continuation",
            "decided_at": now,
            "decision_reason": f"continues {predecessor.id}, which {predecessor.decided_by} approved",
        }
        row = await self._insert_row(
            change.conn,
            values,
            now=now,
            actor=request.agent,
            detail=f"continues {predecessor.id} with the input it asked for",
        )
        await self._ledger.audit.record_step(
            change.conn,
            event="decided",
            approval=row,
            now=now,
            actor=predecessor.decided_by,
            outcome="approved",
            detail=f"via continuation of {predecessor.id}",
        )
        # Not `parked=True`: nobody needs to be asked, so no channel posts a request for a decision.
        change.touch(row.id)
        return row

    async def _insert_row(
        self, conn: AsyncConnection, values: dict[str, Any], *, now: float, actor: str, detail: str | None
    ) -> ApprovalRow:
        """Insert a new approval and write its `parked` step; returns it as stored."""
        await approval_store.insert(conn, values)
        row = await approval_store.get(conn, str(values["id"]))
        assert row is not None
        await self._ledger.audit.record_step(conn, event="parked", approval=row, now=now, actor=actor, detail=detail)
        return row

    def _values(self, request: ParkRequest, now: float) -> dict[str, Any]:
        """The new approval row for `request`, pending."""
        decision = request.decision
        timeout = decision.timeout or self._settings.timeout_seconds
        # An escalation due at or after the expiry would never happen: not scheduled at all.
        after = decision.escalate_after
        escalate_after = after if after is not None and after < timeout else None
        return {
            "id": new_approval_id(),
            "upstream": request.upstream,
            "tool": request.tool,
            "agent": request.agent,
            "arguments": canonical_json(request.arguments),
            "args_hash": request.args_hash,
            "params": request.params_text,
            "forward_headers": json.dumps(request.forward_headers),
            "era": request.era.value,
            "protocol_version": request.protocol_version,
            "session_id": request.session_id,
            "request_id": json.dumps(request.request_id),
            "progress_token": None if request.progress_token is None else json.dumps(request.progress_token),
            "policy_rule": decision.rule_id or decision.rule,
            "policy_reason": decision.reason,
            "policy_version": request.policy_version,
            "reviewers": None if decision.reviewers is None else json.dumps(list(decision.reviewers)),
            "routing": json.dumps(decision.routing) if decision.routing else None,
            "quorum": decision.approvals,
            "reviewer_groups": None if decision.reviewer_groups is None else json.dumps(list(decision.reviewer_groups)),
            "status": "pending",
            "created_at": now,
            "expires_at": now + timeout,
            "updated_at": now,
            "attach_seq": 0,
            "escalate_at": None if escalate_after is None else now + escalate_after,
            "escalate_to": None if escalate_after is None else decision.escalate_to,
            "grant_policy": None if decision.grants is None else grant_policy_json(decision.grants),
        }

    async def withdraw(
        self, approval_id: str, *, by: str, reason: str, attach_seq: int | None = None, delivered: bool = False
    ) -> bool:
        """Withdraw a pending approval (the agent no longer wants the call); True if this call did it.

        Args:
            attach_seq: withdraw only if no request attached since this sequence number (the
                2026-07-28 grace period: an identical retry within it keeps the approval alive).
            delivered: the agent already knows (it cancelled), so no retry should receive the outcome.
        """
        now = self._ledger.clock.now()
        where = [] if attach_seq is None else [approval_store.attach_seq_is(attach_seq)]
        async with self._ledger.change() as change:
            row = await change.move(
                approval_id,
                expected="pending",
                to="withdrawn",
                now=now,
                where=where,
                event="withdrawn",
                actor=by,
                audit_detail=reason,
                decided_by=by,
                decided_via="client",
                decided_at=now,
                decision_reason=reason,
                finished_at=now,
                delivered_at=now if delivered else None,
            )
        return row is not None

    async def schedule_withdrawal(self, approval_id: str, *, attach_seq: int) -> float | None:
        """A 2026-07-28 client closed its held stream: record when the approval is withdrawn.

        Durable, so that the withdrawal happens even if this process dies during the grace period
        (any process's sweeper carries it out). Returns the time it is due, or None when the
        approval is no longer pending or was attached again since `attach_seq`.
        """
        due = self._ledger.clock.now() + self._settings.cancel_grace_seconds
        async with self._ledger.db.write() as conn:
            scheduled = await approval_store.schedule_withdrawal(conn, approval_id, attach_seq=attach_seq, at=due)
        return due if scheduled else None

    async def withdraw_abandoned(self, approval_id: str, *, agent: str, attach_seq: int) -> bool:
        """Carry out a scheduled withdrawal (unless a request attached again since `attach_seq`)."""
        grace = self._settings.cancel_grace_seconds
        return await self.withdraw(
            approval_id,
            by=agent,
            attach_seq=attach_seq,
            reason=f"the client closed the request and did not call again within {grace:g} s",
        )

    async def expire(self, approval_id: str) -> bool:
        now = self._ledger.clock.now()
        async with self._ledger.change() as change:
            row = await change.move(
                approval_id,
                expected="pending",
                to="expired",
                now=now,
                event="expired",
                where=[approval_store.expired(now)],
                finished_at=now,
            )
        return row is not None

    async def in_flight(self, *, agent: str, upstream: str, tool: str, args_hash: str) -> bool:
        """Whether an identical call would attach to an approval (open, or its outcome undelivered).

        A scoped grant never covers such a call: it is the agent's retry of the call in flight,
        which must attach and get that one outcome, not run a second time (`grants.py`).
        """
        async with self._ledger.db.read() as conn:
            existing = await approval_store.find_attachable(
                conn,
                agent=agent,
                upstream=upstream,
                tool=tool,
                args_hash=args_hash,
                now=self._ledger.clock.now(),
                retention=self._settings.result_retention_seconds,
            )
        return existing is not None

    async def stream(self, stream_id: str) -> StreamRow | None:
        """A held stream by id (None when unknown or purged)."""
        async with self._ledger.db.read() as conn:
            return await stream_store.get_stream(conn, stream_id)

    async def events_after(self, stream_id: str, seq: int) -> list[StoredEvent]:
        """The stored events of a held stream after `seq`, in order (what a resumed stream replays)."""
        async with self._ledger.db.read() as conn:
            return await stream_store.events_after(conn, stream_id, seq)

    async def store_event(self, stream_id: str, data: str) -> int:
        """Store one event of a held stream (before it is sent); returns its sequence number."""
        async with self._ledger.db.write() as conn:
            return await stream_store.append_event(conn, stream_id, data, self._ledger.clock.now())

    async def record_answer(
        self, stream_id: str, data: str, *, store: bool, delivering: str | None = None
    ) -> int | None:
        """Record a held request's answer before it is sent: store it, and mark the outcome delivered.

        Marking before sending means the agent's next identical call, which it can send the
        instant it reads this answer, already sees the outcome as delivered (and so gets it as a
        replay rather than attaching as if it were still on its way).

        Args:
            delivering: the id of the finished approval whose outcome this answer carries.
        """
        now = self._ledger.clock.now()
        async with self._ledger.change() as change:
            seq = await stream_store.append_event(change.conn, stream_id, data, now) if store else None
            if delivering is not None and await approval_store.mark_delivered(change.conn, delivering, now):
                row = await approval_store.get(change.conn, delivering)
                assert row is not None
                await self._ledger.audit.record_step(
                    change.conn,
                    event="delivered",
                    approval=row,
                    now=now,
                    actor=row.agent,
                    detail=f"stream {stream_id}",
                    outcome=row.status,
                )
                change.touch(delivering)
        return seq

    async def mark_delivered(self, approval_id: str, *, stream_id: str) -> None:
        await self.record_answer(stream_id, "", store=False, delivering=approval_id)
