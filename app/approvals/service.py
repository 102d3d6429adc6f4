"""The approval lifecycle's one owner: the small surface transports and reviewer channels use.

`Approvals` wraps the queue (park, attach, replay, continue, withdraw, expire), the decision path,
the executor (run an approved call once) and the sweeper (background upkeep), and hands a
transport a `Hold` per held request: an async stream of typed lifecycle events (`hold.py`) that
the transport turns into its wire format. Everything that reads or writes approvals, held streams
or their stored events does it here or below (`queue.py`, `ledger.py`, `store/`), never in a
transport: the gateway imports nothing from `app.store`.

    attachment = await approvals.park(request, priming=resumable)
    hold = approvals.hold(attachment, resumable=resumable)
    async with aclosing(hold.events()) as events:
        async for event in events:
            ...  # Waiting, Progress, Relayed, then Outcome or Pending

Reviewer channels (the API, the CLI, Slack, the inbox) use the `ApprovalDesk` part of it: read
and search approvals, an approval's timeline, what changed since a moment, and decide. The CLI,
which serves nothing, gets an `ApprovalDesk` alone from `app/runtime.py::build_core`; the serving
process hands the channels its `Approvals`, which is one. Both return `Approval`s (`model.py`);
the rows stay below this module.

What it does not do: policy (the gateway judged the call before parking it), wording (the
sentences are `wording.py`'s, the MCP results `outcomes.py`'s), and reviewer notification
(`channels.py`, which the ledger tells after each commit). Allowed calls never come here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Coroutine, Sequence
from dataclasses import replace
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from app.approvals.continuation import Continuation, continuation_of
from app.approvals.decisions import (
    AlreadyDecided,
    ApprovalNotFound,
    DecisionError,
    GrantRefused,
    NotAllowed,
    ReasonRequired,
    ReviewerGroups,
    Verdict,
    Via,
    decide,
    refusal,
)
from app.approvals.executor import Executor, Publish
from app.approvals.grants import Grant, GrantAlreadyRevoked, GrantError, GrantRequest, Grants
from app.approvals.hold import Hold, HoldEvent, Outcome, Pending, Progress, Relayed, Replayed, Waiting
from app.approvals.ledger import Ledger
from app.approvals.model import Approval
from app.approvals.queue import ApprovalQueue, Attachment, ParkRequest, TooManyPending
from app.approvals.sweeper import Sweeper
from app.clock import Clock
from app.config import ApprovalSettings
from app.identity import identity_key
from app.protocol import Era
from app.store import approvals as approval_store
from app.store import audit as audit_store
from app.store.audit import AuditRow
from app.store.streams import StreamRow
from app.tracing import Traces, current_traceparent, lifecycle_span
from app.types import RequestId

__all__ = [
    "AlreadyDecided",
    "ApprovalDesk",
    "ApprovalNotFound",
    "Approvals",
    "Attachment",
    "Continuation",
    "DecisionError",
    "Grant",
    "GrantAlreadyRevoked",
    "GrantError",
    "GrantRefused",
    "GrantRequest",
    "Hold",
    "HoldEvent",
    "NotAllowed",
    "Outcome",
    "ParkRequest",
    "Pending",
    "Progress",
    "ReasonRequired",
    "Relayed",
    "Replayed",
    "TooManyPending",
    "Verdict",
    "Via",
    "Waiting",
    "continuation_of",
]

logger = logging.getLogger("airlock.approvals")

TIMELINE_LIMIT: Final = 1000
"""At most this many steps of one approval's timeline are read."""


class ApprovalDesk:
    """The approvals service as reviewer channels use it: read, search, trace and decide."""

    def __init__(self, ledger: Ledger, *, groups: ReviewerGroups | None = None, traces: Traces | None = None) -> None:
        """Args:
        groups: each reviewer's groups by identity key, for rules that name `reviewer_groups`
            (`Settings.reviewer_groups`); none when omitted.
        """
        self.ledger = ledger
        self.groups: ReviewerGroups = groups if groups is not None else {}
        self._traces = traces
        self.grants = Grants(ledger)

    @property
    def clock(self) -> Clock:
        return self.ledger.clock

    async def get(self, approval_id: str) -> Approval | None:
        row = await self.ledger.get(approval_id)
        return None if row is None else Approval.from_row(row)

    async def search(
        self,
        *,
        statuses: Sequence[str] = (),
        agent: str | None = None,
        tool: str | None = None,
        upstream: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        newest_first: bool = True,
    ) -> list[Approval]:
        """Approvals with any of `statuses` (every status when empty), by the call's agent, tool and
        upstream, created in [`since`, `until`), newest first unless `newest_first` is False."""
        async with self.ledger.db.read() as conn:
            rows = await approval_store.search(
                conn,
                statuses=statuses,
                agent=agent,
                tool=tool,
                upstream=upstream,
                since=since,
                until=until,
                limit=limit,
                newest_first=newest_first,
            )
        return [Approval.from_row(row) for row in rows]

    async def timeline(self, approval_id: str) -> list[AuditRow]:
        """What happened to an approval since it was parked, oldest first, as the audit log recorded it.

        The agent's call itself (the audit entry `call`) is not a step of the approval's.
        """
        async with self.ledger.db.read() as conn:
            return await _timeline(conn, approval_id)

    async def changed_since(self, since: float) -> list[str]:
        """The approvals changed after `since` (`updated_at`), least recently changed first."""
        async with self.ledger.db.read() as conn:
            return [approval_id for approval_id, _ in await approval_store.changed_since(conn, since)]

    async def decide(
        self,
        approval_id: str,
        *,
        reviewer: str,
        verdict: Verdict,
        via: Via,
        reason: str | None = None,
        asserted_groups: frozenset[str] = frozenset(),
        grant: GrantRequest | None = None,
    ) -> Approval:
        """Approve or reject as `reviewer` (first decision wins; under a quorum rule an approval that is
        not the last one needed returns the approval still pending, with the vote counted; see
        `decisions.decide` for what it raises).

        Args:
            asserted_groups: groups the reviewer's identity provider asserted at sign-in (the inbox's
                single sign-on), counted for `reviewer_groups` rules with those airlock.toml gives.
            grant: a scoped grant to give with the approval (`grants.py`); `self.grants` reads and
                revokes grants.
        """
        groups = self._groups_with(reviewer, asserted_groups)
        if self._traces is None:
            return await decide(
                self.ledger,
                approval_id,
                reviewer=reviewer,
                verdict=verdict,
                via=via,
                reason=reason,
                groups=groups,
                grant=grant,
            )
        row = await self.ledger.get(approval_id)
        parked_by = None if row is None else Approval.from_row(row).forward_headers.get("traceparent")
        attributes = {"airlock.approval_id": approval_id, "airlock.verdict": verdict, "airlock.reviewer": reviewer}
        with lifecycle_span(self._traces, "approval decide", parked_by=parked_by, attributes=attributes):
            return await decide(
                self.ledger,
                approval_id,
                reviewer=reviewer,
                verdict=verdict,
                via=via,
                reason=reason,
                groups=groups,
                grant=grant,
            )

    async def refusal(
        self, approval: Approval, *, reviewer: str, verdict: Verdict, asserted_groups: frozenset[str] = frozenset()
    ) -> DecisionError | None:
        """Why `reviewer` could not decide `approval` now (every rule but the reason), or None.

        For a channel that must ask something first; `decide` still checks everything again.
        """
        groups = self._groups_with(reviewer, asserted_groups)
        return await refusal(self.ledger, approval, reviewer=reviewer, verdict=verdict, groups=groups)

    def _groups_with(self, reviewer: str, asserted: frozenset[str]) -> ReviewerGroups:
        if not asserted:
            return self.groups
        key = identity_key(reviewer)
        return {**self.groups, key: self.groups.get(key, frozenset()) | asserted}


class Approvals(ApprovalDesk):
    def __init__(
        self,
        ledger: Ledger,
        queue: ApprovalQueue,
        executor: Executor,
        sweeper: Sweeper,
        settings: ApprovalSettings,
        *,
        public_url: str,
        groups: ReviewerGroups | None = None,
        traces: Traces | None = None,
    ) -> None:
        super().__init__(ledger, groups=groups, traces=traces)
        self.queue = queue
        self.settings = settings
        self.public_url = public_url
        self._executor = executor
        self._sweeper = sweeper

    async def covering_grant(self, *, agent: str, upstream: str, tool: str, args_hash: str, rule: str) -> Grant | None:
        """The live grant that lets `agent` make this call without parking, or None (`grants.py`).

        The gateway asks only for a call its policy sends to a rule that offers grants; the lookup
        reads the database every time, so a revocation is in force at once on every replica. A
        covered call identical to one still in flight gets None: it attaches to that one instead.
        """
        grant = await self.grants.covering(agent=agent, upstream=upstream, tool=tool, args_hash=args_hash, rule=rule)
        if grant is None:
            return None
        # The agent's retry of a call still held (or whose outcome it has not received) attaches to
        # it and gets that one outcome: a grant never makes it run twice (invariant 3).
        if await self.queue.in_flight(agent=agent, upstream=upstream, tool=tool, args_hash=args_hash):
            return None
        return grant

    async def park(self, request: ParkRequest, *, priming: bool) -> Attachment:
        """Park a call durably, or attach it to the identical open one, or replay its delivered outcome.

        Args:
            priming: store an empty first event, so a resumable stream can be resumed from its start.

        Raises:
            TooManyPending: the agent already has `max_pending_per_agent` calls waiting.
        """
        if (traceparent := current_traceparent()) is not None:
            # Stored with the call, so its decision and execution link back to this request's span.
            request = replace(request, forward_headers={**request.forward_headers, "traceparent": traceparent})
        return await self.queue.park(request, priming=priming)

    def hold(self, attachment: Attachment, *, resumable: bool) -> Hold:
        """The lifecycle events of the request that parked (or attached) as `attachment`."""
        return Hold(
            self,
            attachment.stream,
            era=attachment.era,
            resumable=resumable,
            attach_seq=attachment.attach_seq,
            replay=attachment.replayed,
            priming_seq=attachment.priming_seq,
        )

    async def resume(self, stream_id: str, *, agent: str, session_id: str) -> Hold | None:
        """The hold of a handshake-era stream being resumed, or None unless it is this agent's and session's.

        Another identity's (or a made-up) stream id gets None, exactly like one that does not exist
        (invariant 4 of docs/architecture.md).
        """
        stream = await self.queue.stream(stream_id)
        if stream is None or stream.agent != agent or stream.session_id != session_id:
            return None
        return Hold(self, stream, era=Era.HANDSHAKE, resumable=True, attach_seq=-1)

    async def cancel_request(self, session_id: str, request_id: RequestId, *, by: str, reason: str) -> None:
        """A handshake-era client cancelled a request: withdraw what it holds, now or once it is parked."""
        await self.queue.cancel_request(session_id, request_id, by=by, reason=reason)

    def execute(self, approval_id: str, *, publish: Publish | None = None) -> asyncio.Task[bool]:
        """Run an approved call in its own task, if this process wins the claim (at most once).

        Args:
            publish: where the upstream's in-flight messages go (the hold that started the run).

        Returns:
            The task; its result is False when someone else claimed the call or it is not approved.
        """
        return self.spawn(self._executor.execute(approval_id, publish=publish))

    async def withdraw(self, approval_id: str, *, by: str, reason: str) -> bool:
        """Withdraw a pending approval (the agent no longer wants the call); True if this call did it."""
        return await self.queue.withdraw(approval_id, by=by, reason=reason)

    async def withdraw_after_grace(self, stream: StreamRow, *, attach_seq: int) -> None:
        """A 2026-07-28 client left its held stream: withdraw after the grace period, unless it called again.

        The withdrawal is scheduled in the database first, so it happens even if this process dies
        during the grace period (any process's sweeper carries it out).
        """
        due = await self.queue.schedule_withdrawal(stream.approval_id, attach_seq=attach_seq)
        if due is None:
            return
        await self.clock.sleep(max(0.0, due - self.clock.now()))
        withdrawn = await self.queue.withdraw_abandoned(stream.approval_id, agent=stream.agent, attach_seq=attach_seq)
        if withdrawn:
            logger.info("approval %s withdrawn: its 2026-07-28 client went away", stream.approval_id)

    async def mark_delivered(self, approval_id: str, *, stream_id: str) -> None:
        """Record that a finished approval's outcome reached the agent (on `stream_id`)."""
        approval = await self.get(approval_id)
        if approval is not None and approval.is_finished:
            await self.queue.mark_delivered(approval_id, stream_id=stream_id)

    async def watch(self, approval_id: str) -> AsyncGenerator[Approval, None]:
        """The approval now, then again each time it changes, until it is finished (or vanishes)."""
        with self.ledger.notifier.waiter(approval_id) as changed:
            while True:
                approval = await self.get(approval_id)
                if approval is None:
                    return
                yield approval
                if approval.is_finished:
                    return
                await changed.wait()
                changed.clear()

    async def sweep(self) -> float:
        """One pass of background upkeep (expire, withdraw abandoned, mark lost runs, run unclaimed)."""
        return await self._sweeper.sweep()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run lifecycle work that must outlive the request that started it."""
        return self.ledger.spawn(coroutine)


async def _timeline(conn: AsyncConnection, approval_id: str) -> list[AuditRow]:
    steps = await audit_store.search(conn, approval_id=approval_id, newest_first=False, limit=TIMELINE_LIMIT)
    return [step for step in steps if step.event != "call"]
