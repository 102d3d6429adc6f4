"""The one way approval state changes: a write transaction, then signals, then reviewer channels.

    async with ledger.change() as change:
        row = await change.move(id, expected="pending", to="approved", now=now, event="decided", ...)
    # committed here (row is None if someone else moved it first); signals published on commit,
    # waiters woken, channels told

That order is invariant 2 of docs/architecture.md (durable before acknowledged): nobody hears of a change before
its transaction commits. Queue, decisions, executor and sweeper all go through `change()`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from app.approvals.channels import ChannelFanout
from app.approvals.model import Approval
from app.approvals.signals import Notifier
from app.audit import AuditLog
from app.clock import SYSTEM_CLOCK, Clock
from app.metrics import Metrics
from app.store import approvals as approval_store
from app.store.approvals import FINISHED, ApprovalRow, Condition, Status
from app.store.db import Database

logger = logging.getLogger("airlock.approvals")

EXECUTED: Final[tuple[Status, ...]] = ("completed", "failed", "outcome_unknown")
"""The statuses an approved call's execution ends in."""


@dataclass
class Change:
    conn: AsyncConnection
    audit: AuditLog
    touched: dict[str, bool] = field(default_factory=dict)
    finished: list[tuple[str, Status]] = field(default_factory=list)
    """(upstream, status) of each approval this transaction moved to a final status."""
    decided: list[tuple[str, Status, float]] = field(default_factory=list)
    """(upstream, verdict, seconds since park) of each approval a reviewer decided here."""
    resulted: list[tuple[str, Status, float]] = field(default_factory=list)
    """(upstream, status, seconds since the decision) of each approved call whose result was stored here."""

    def touch(self, approval_id: str, *, parked: bool = False) -> None:
        """Mark `approval_id` as changed by this transaction (`parked`: it is new)."""
        self.touched[approval_id] = self.touched.get(approval_id, False) or parked

    async def move(
        self,
        approval_id: str,
        *,
        expected: Status | Sequence[Status],
        to: Status,
        now: float,
        event: str,
        where: Sequence[Condition] = (),
        actor: str | None = None,
        audit_outcome: str | None = None,
        audit_detail: str | None = None,
        **values: Any,
    ) -> ApprovalRow | None:
        """Compare-and-set one approval's status, write the step to the audit log, mark it touched.

        Args:
            event, actor, audit_outcome, audit_detail: the audit log entry for this step.
            values: other columns the transition sets.

        Returns:
            The approval as moved, or None when this caller lost (the status was not in
            `expected`, or a `where` condition failed): then nothing was written.
        """
        if not await approval_store.transition(
            self.conn, approval_id, expected=expected, to=to, now=now, where=where, **values
        ):
            return None
        row = await approval_store.get(self.conn, approval_id)
        assert row is not None
        await self.audit.record_step(
            self.conn, event=event, approval=row, now=now, actor=actor, outcome=audit_outcome, detail=audit_detail
        )
        self.touch(approval_id)
        if to in FINISHED:
            self.finished.append((row.upstream, to))
        if row.decided_at is not None:
            if to in ("approved", "rejected") and row.decided_at == now:
                self.decided.append((row.upstream, to, row.decided_at - row.created_at))
            elif to in EXECUTED:
                self.resulted.append((row.upstream, to, now - row.decided_at))
        return row


class Ledger:
    def __init__(
        self,
        db: Database,
        notifier: Notifier,
        channels: ChannelFanout,
        audit: AuditLog,
        metrics: Metrics | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """Args:
        clock: the lifecycle's time; queue, decisions, executor and sweeper read it from here.
        """
        self.db = db
        self.clock = clock
        self.metrics = metrics
        self.notifier = notifier
        self.channels = channels
        self.audit = audit
        self._background: set[asyncio.Task[Any]] = set()

    @asynccontextmanager
    async def change(self) -> AsyncIterator[Change]:
        async with self.db.write() as conn:
            change = Change(conn, self.audit)
            yield change
            for approval_id in change.touched:
                await self.notifier.publish(conn, approval_id)
        if self.metrics is not None:
            for upstream, status in change.finished:  # committed: counted once, by the process that moved it
                self.metrics.approval_finished(upstream, status)
            for upstream, verdict, seconds in change.decided:
                self.metrics.approval_decided(upstream, verdict, seconds)
            for upstream, status, seconds in change.resulted:
                self.metrics.approval_result(upstream, status, seconds)
        for approval_id in change.touched:
            self.notifier.wake(approval_id)
        if change.touched and self.channels.channels:
            self.spawn(self._tell_channels(dict(change.touched)))

    async def get(self, approval_id: str) -> ApprovalRow | None:
        async with self.db.read() as conn:
            return await approval_store.get(conn, approval_id)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run work that must not be tied to any one request (and must not be garbage-collected)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background approval work failed", exc_info=task.exception())

    async def _tell_channels(self, touched: dict[str, bool]) -> None:
        for approval_id, parked in touched.items():
            row = await self.get(approval_id)
            if row is None:
                continue
            approval = Approval.from_row(row)
            if parked:
                told = await self.channels.parked(approval)
                if told:
                    async with self.db.write() as conn:
                        await self.audit.record_step(
                            conn, event="notified", approval=row, now=self.clock.now(), detail="via " + ", ".join(told)
                        )
            else:
                await self.channels.changed(approval)

    async def shutdown(self, *, grace: float = 0.0) -> None:
        """Give background work up to `grace` seconds to finish, then cancel it (executions in flight
        keep their lease and are resolved by the sweeper)."""
        if self._background and grace > 0:
            await asyncio.wait(list(self._background), timeout=grace)
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
