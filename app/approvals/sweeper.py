"""Background upkeep of the queue, run by every process (every replica): idempotent by construction.

Each pass:

1. expires pending approvals whose time is up (on time: the loop sleeps until the next expiry),
   whether or not any agent is connected, and withdraws those a 2026-07-28 client abandoned
   (a scheduled withdrawal whose process died before carrying it out), and escalates, once,
   those still pending past their rule's `escalate_after` (`escalation.py`);
2. marks `executing` rows whose executor's lease lapsed as `outcome_unknown` (a crash mid-call:
   never re-sent);
3. runs approved calls nobody is holding (an approved call runs when it is approved; its result
   waits for the agent's next identical call);
4. re-reads recently changed approvals and wakes local waiters, in case a signal was missed (the
   only cross-process wake-up on SQLite, e.g. after `airlock approvals approve` in a terminal);
5. about once a minute, purges expired rate-limit windows and held streams (with their stored
   events) whose hold ended more than `stream_retention_seconds` ago, then audit entries older than
   `[audit] retention_days` and finished approvals older than `[approvals] retention_days` (see
   `prune`), all in bounded batches.
   Sessions are purged by their own janitor (`app/sessions.py`).

Every step is a compare-and-set through the same store functions the request paths use, so two
replicas sweeping at once can only duplicate a read, never an action.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from app.approvals.escalation import Escalator
from app.approvals.executor import Executor
from app.approvals.ledger import Ledger
from app.approvals.queue import ApprovalQueue
from app.config import ApprovalSettings
from app.store import approvals as approval_store
from app.store import audit as audit_store
from app.store import ratelimit as rate_store
from app.store import streams as stream_store

logger = logging.getLogger("airlock.sweeper")

_HOLDER_HEAD_START: Final = 0.5
"""Seconds an approved call is left to its holder (which runs it at once) before the sweeper takes it."""
_POLL_OVERLAP: Final = 2.0
"""The safety poll re-reads this many seconds before its last pass (commits land out of order)."""
_PURGE_BATCH: Final = 500
_PURGE_BATCHES: Final = 20
_DAY: Final = 86400.0


@dataclass(frozen=True, slots=True)
class Pruned:
    audit_entries: int
    approvals: int


class Sweeper:
    def __init__(
        self,
        ledger: Ledger,
        queue: ApprovalQueue,
        executor: Executor,
        settings: ApprovalSettings,
        *,
        audit_retention_days: float = 90.0,
    ) -> None:
        self._ledger = ledger
        self._queue = queue
        self._executor = executor
        self._escalator = Escalator(ledger)
        self._settings = settings
        self._audit_retention_days = audit_retention_days
        self._kick = asyncio.Event()
        self._seen: dict[str, float] = {}
        self._last_poll = self._ledger.clock.now()
        self._last_purge = 0.0
        self._running: set[str] = set()
        # Changes this process already signalled (its own, and those NOTIFY delivered) need no
        # second wake-up from the safety poll: remember when each was signalled.
        ledger.notifier.add_listener(self._signalled)

    def _signalled(self, approval_id: str) -> None:
        self._seen[approval_id] = self._ledger.clock.now()

    def kick(self) -> None:
        """Sweep now rather than at the next scheduled pass."""
        self._kick.set()

    async def run(self) -> None:
        while True:
            try:
                delay = await self.sweep()
            except Exception:
                logger.exception("sweep failed; retrying")
                delay = self._settings.safety_poll_seconds
            self._kick.clear()
            await self._ledger.clock.wait(self._kick, delay)

    async def sweep(self) -> float:
        """One pass; returns how long to sleep before the next one."""
        now = self._ledger.clock.now()
        async with self._ledger.db.read() as conn:
            due = await approval_store.due_for_expiry(conn, now)
            abandoned = await approval_store.due_withdrawals(conn, now)
            lost = await approval_store.lost_executions(conn, now)
            unclaimed = await approval_store.unclaimed_approved(conn, now - _HOLDER_HEAD_START)
            changes = await approval_store.changed_since(conn, self._last_poll - _POLL_OVERLAP)
            deadlines = [
                await approval_store.next_expiry(conn),
                await approval_store.next_withdrawal(conn),
                await approval_store.next_escalation(conn),
            ]
        for approval_id in due:
            await self._queue.expire(approval_id)
        await self._escalator.escalate_due()
        for approval_id, agent, attach_seq in abandoned:
            await self._queue.withdraw_abandoned(approval_id, agent=agent, attach_seq=attach_seq)
        for approval_id in lost:
            await self._mark_lost(approval_id)
        for approval_id in unclaimed:
            self._run_unclaimed(approval_id)
        self._wake_changed(changes, now)
        await self._purge(now)
        delay = self._settings.safety_poll_seconds
        for deadline in deadlines:
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - self._ledger.clock.now()) + 0.005)
        return delay

    async def _mark_lost(self, approval_id: str) -> None:
        now = self._ledger.clock.now()
        async with self._ledger.change() as change:
            row = await change.move(
                approval_id,
                expected="executing",
                to="outcome_unknown",
                now=now,
                event="outcome_unknown",
                where=[approval_store.lease_lapsed(now)],
                finished_at=now,
                outcome="the Airlock process running this call stopped before the upstream answered; "
                "it may or may not have taken effect, and it will not be re-sent",
            )
        if row is not None:
            logger.error("approval %s: its execution was cut off; marked outcome_unknown (not re-sent)", approval_id)

    def _run_unclaimed(self, approval_id: str) -> None:
        if approval_id in self._running:
            return
        self._running.add(approval_id)
        task = self._ledger.spawn(self._executor.execute(approval_id))
        task.add_done_callback(lambda _t: self._running.discard(approval_id))

    def _wake_changed(self, changes: list[tuple[str, float]], now: float) -> None:
        for approval_id, updated_at in changes:
            if self._seen.get(approval_id, -1.0) < updated_at:
                self._seen[approval_id] = updated_at
                self._ledger.notifier.wake(approval_id)
        self._last_poll = now
        if len(self._seen) > 10_000:
            horizon = now - 10 * _POLL_OVERLAP
            self._seen = {k: v for k, v in self._seen.items() if v > horizon}

    async def _purge(self, now: float) -> None:
        if now - self._last_purge < 60:
            return
        self._last_purge = now
        await self.purge(now)
        await self.prune(now)

    async def purge(self, now: float) -> int:
        """Delete what outlived its retention at `now`; returns how many streams went.

        Streams go in batches of `_PURGE_BATCH`, one transaction each, so a pass never holds the
        database for long; what a pass leaves (more than `_PURGE_BATCHES` batches) goes next time.
        """
        async with self._ledger.db.write() as conn:
            await rate_store.purge_expired(conn, now)
        ended_before = now - self._settings.stream_retention_seconds
        purged = 0
        for _ in range(_PURGE_BATCHES):
            async with self._ledger.db.write() as conn:
                batch = await stream_store.purge_ended(conn, ended_before, _PURGE_BATCH)
            purged += batch
            if batch < _PURGE_BATCH:
                break
        return purged

    async def prune(self, now: float) -> Pruned:
        """Delete audit entries and finished approvals that outlived their retention at `now`.

        Same bounds as `purge`: each kind goes in batches of `_PURGE_BATCH` rows, one transaction
        each, at most `_PURGE_BATCHES` batches a pass. A retention of 0 days keeps everything. An
        approval is kept at least `result_retention_seconds` (its outcome may still be replayed or
        continued), and while a stream or a continuing approval references it.
        """
        audit_entries = approvals = 0
        if self._audit_retention_days > 0:
            audit_entries = await self._in_batches(audit_store.prune, now - self._audit_retention_days * _DAY)
        if self._settings.retention_days > 0:
            kept = max(self._settings.retention_days * _DAY, self._settings.result_retention_seconds)
            approvals = await self._in_batches(approval_store.prune_finished, now - kept)
        if audit_entries or approvals:
            logger.info(
                "pruned %d audit entries and %d finished approvals past their retention", audit_entries, approvals
            )
        return Pruned(audit_entries, approvals)

    async def _in_batches(self, prune: Callable[[AsyncConnection, float, int], Awaitable[int]], before: float) -> int:
        pruned = 0
        for _ in range(_PURGE_BATCHES):
            async with self._ledger.db.write() as conn:
                batch = await prune(conn, before, _PURGE_BATCH)
            pruned += batch
            if batch < _PURGE_BATCH:
                break
        return pruned
