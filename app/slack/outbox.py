"""The durable outbox that keeps each approval's Slack message in step with the database.

Slack trouble must never lose, block or delay an approval, so nothing about Slack happens on the
agent's path. Parking a call only inserts an outbox row (after the approval committed); this worker,
one per Airlock process, makes the Slack calls:

- a row whose message is not posted yet → `chat.postMessage`, then the message's channel and ts
  are stored on the row (`posted`), which is where clicks are checked against;
- a row whose message shows an older status than the approval → `chat.update` in place.

The approval row is the wanted state and `rendered_status` the shown one, so there is no queue of
edits to replay: whatever changed, and however often, the next attempt renders the current row.
That is also the dedupe: every process is woken for every change (`notifier` listeners, fed by
PostgreSQL NOTIFY or the SQLite safety poll), but a replica renders only after winning the row's
lease (a compare-and-set, `app/store/slack_outbox.py`) and re-reading that it is still stale, so
one change costs one `chat.update` however many replicas saw it; a duplicate would only repeat the
same content.

Failures are rescheduled on the row: exponential backoff from `retry_initial_seconds` up to
`retry_max_seconds`, or exactly the `Retry-After` of a 429 (and this worker then pauses all calls
until it has passed). Nothing sleeps inside a Slack call.

Reconcile: a crash between the approval's commit and the outbox insert would leave a pending
approval that Slack never hears of. Each pass therefore also enqueues pending approvals that have
no outbox row (so no message) and were parked more than two polls ago (cheap: an indexed
query on pending rows). This also announces
approvals parked while Slack was not configured, or by a replica without it. Finished approvals
are not announced after the fact; rows that already exist are always brought up to date, so a
message that was queued while Slack was down still appears, showing the outcome.

Gives up (settles the row, keeping `last_error`) only when the message is gone (`message_not_found`
and the like) or the approval finished more than `_GIVE_UP_AFTER` ago and Slack still refuses.
Escalation (`app/approvals/escalation.py`): a row is also due while its approval was escalated and
`escalation_shown` is not set. Delivering it updates the message (an "Escalated to #sre-oncall
after 10 min" line) and, while the approval is still pending, posts a notice to the channel of
its `[escalation.<name>]` target; then `escalation_shown` is set with the rendered status. The
same lease and retries apply; a crash between the notice and the record repeats the notice.

A post whose answer is lost (a crash or timeout after Slack accepted it) is posted again: a
duplicate message is possible, a lost one is not. Clicks on such a duplicate are refused because
only the stored channel and ts count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import time
from collections.abc import Mapping
from typing import Any, Final

from app.approvals.model import Approval, Status, routing_of
from app.approvals.service import ApprovalDesk
from app.approvals.wording import iso
from app.config import SlackSettings
from app.slack.blocks import SLACK, approval_message, escalation_message
from app.slack.webapi import SlackApi, describe, error_code, retry_after
from app.store import slack_outbox as outbox_store
from app.store.db import Database
from app.store.slack_outbox import OutboxRow

logger = logging.getLogger("airlock.slack")

_GONE: Final = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
"""`chat.update` errors after which the message can never be updated."""
_RECONCILE_POLLS: Final = 2
"""A pending approval with nothing queued is treated as lost once this many polls have passed."""
_GIVE_UP_AFTER: Final = 86400.0
"""Seconds after an approval finished when Airlock stops retrying a message Slack keeps refusing."""


class Outbox:
    def __init__(
        self,
        db: Database,
        approvals: ApprovalDesk,
        api: SlackApi,
        settings: SlackSettings,
        public_url: str,
        *,
        escalation_channels: Mapping[str, str] | None = None,
    ) -> None:
        """Args:
        db: the outbox's table (`app/store/slack_outbox.py`).
        approvals: where the approval each message shows is read.
        escalation_channels: the Slack channel of each `[escalation.<name>]` target that has one.
        """
        self._db = db
        self._escalation_channels = dict(escalation_channels or {})
        self._approvals = approvals
        self._api = api
        self._settings = settings
        self._public_url = public_url
        self._owner = f"{socket.gethostname()[:40]}:{secrets.token_hex(6)}"
        self._kick = asyncio.Event()
        self._paused_until = 0.0
        self._reconciled_at = 0.0
        self.passes = 0
        """Completed passes (for health checks and tests that wait for the worker to catch up)."""

    def kick(self, _approval_id: str | None = None) -> None:
        """Look for work now (a notifier listener: called with the id of every approval that changed)."""
        self._kick.set()

    def channel_for(self, routing: Mapping[str, Any]) -> str:
        """The channel a new approval's message goes to: its rule's (`routing`, Slack's entry), else the default."""
        channel = routing.get("channel") or self._settings.default_channel
        assert channel, "Slack is enabled only with a default channel"
        return str(channel)

    async def enqueue(self, approval: Approval) -> None:
        """Queue the first post of `approval`'s message (idempotent), then wake the worker."""
        async with self._db.write() as conn:
            await outbox_store.enqueue(conn, approval.id, self.channel_for(approval.routing_for(SLACK)), time.time())
        self.kick()

    async def run(self) -> None:
        """Work until cancelled: a pass whenever kicked, when a retry falls due, and every `poll_seconds`."""
        while True:
            self._kick.clear()
            try:
                delay = await self.work()
            except Exception:
                logger.exception("Slack outbox pass failed; retrying")
                delay = self._settings.poll_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout=delay)

    async def work(self) -> float:
        """One pass: reconcile, then deliver what is due. Returns how long to wait before the next."""
        await self._reconcile()
        now = time.time()
        async with self._db.read() as conn:
            due = await outbox_store.due(conn, now)
        for approval_id in due:
            if time.time() < self._paused_until:
                break
            await self._deliver(approval_id)
        async with self._db.read() as conn:
            next_attempt = await outbox_store.next_attempt(conn)
        self.passes += 1
        delay = self._settings.poll_seconds
        if next_attempt is not None:
            delay = min(delay, max(next_attempt, self._paused_until) - time.time())
        return max(delay, 0.01)

    async def _reconcile(self) -> None:
        """Queue pending approvals nobody queued (at most once per poll, not on every wake-up)."""
        now = time.time()
        if now - self._reconciled_at < self._settings.poll_seconds:
            return
        self._reconciled_at = now
        # The grace keeps this from racing the parking process's own enqueue (harmless, as the
        # insert is idempotent, but it would log a false alarm).
        grace = _RECONCILE_POLLS * self._settings.poll_seconds
        async with self._db.read() as conn:
            lost = await outbox_store.unannounced(conn, created_before=now - grace)
        if not lost:
            return
        async with self._db.write() as conn:
            for item in lost:
                if await outbox_store.enqueue(
                    conn, item.approval_id, self.channel_for(routing_of(item.routing).get(SLACK, {})), now
                ):
                    logger.warning("approval %s had no Slack message queued; queued it now", item.approval_id)

    async def _deliver(self, approval_id: str) -> None:
        now = time.time()
        lease = now + self._settings.lease_seconds
        async with self._db.write() as conn:
            if not await outbox_store.claim(conn, approval_id, owner=self._owner, now=now, lease_until=lease):
                return
            row = await outbox_store.get(conn, approval_id)
        # Read after the claim committed, so the message renders the approval as it is now.
        approval = await self._approvals.get(approval_id)
        assert row is not None and approval is not None
        escalation_due = approval.escalated_at is not None and not row.escalation_shown
        shown = row.rendered_status == approval.status and row.rendered_votes == _votes(approval)
        if row.ts is not None and shown and not escalation_due:
            await self._release(approval_id)
            return
        try:
            await self._render(row, approval)
        except Exception as exc:
            await self._failed(row, approval, exc)

    async def _render(self, row: OutboxRow, approval: Approval) -> None:
        escalated_to = self._escalation_channels.get(approval.escalate_to or "")
        message = approval_message(approval, self._public_url, escalated_to=escalated_to)
        timeout = self._settings.api_timeout_seconds
        if row.ts is None:
            channel, ts = await self._api.post_message(row.channel, message, timeout=timeout)
        else:
            channel, ts = row.channel, row.ts
            await self._api.update_message(channel, ts, message, timeout=timeout)
        if escalated_to is not None and not row.escalation_shown and approval.escalated_at is not None:
            await self._tell_escalation_channel(escalated_to, approval)
        now = time.time()
        async with self._db.write() as conn:
            if row.ts is None:
                await outbox_store.posted(conn, approval.id, channel, ts)
            await outbox_store.rendered(
                conn,
                approval.id,
                owner=self._owner,
                status=approval.status.value,
                settled=approval.is_finished,
                now=now,
                votes=_votes(approval),
                escalation_shown=approval.escalated_at is not None,
            )
        logger.info("Slack message for approval %s shows %s (%s %s)", approval.id, approval.status, channel, ts)

    async def _tell_escalation_channel(self, channel: str, approval: Approval) -> None:
        # Only while someone can still decide: an approval decided (or expired) before this row
        # was worked on shows its escalation in its own message, and nobody else is paged for it.
        if approval.status is not Status.PENDING:
            return
        notice = escalation_message(approval, self._public_url)
        await self._api.post_message(channel, notice, timeout=self._settings.api_timeout_seconds)
        logger.info("approval %s escalated: notice posted to %s", approval.id, channel)

    async def _failed(self, row: OutboxRow, approval: Approval, error: BaseException) -> None:
        now = time.time()
        reason = describe(error)
        gone = row.ts is not None and error_code(error) in _GONE
        stale = approval.is_finished and now - approval.updated_at > _GIVE_UP_AFTER
        async with self._db.write() as conn:
            if gone or stale:
                await outbox_store.give_up(conn, approval.id, owner=self._owner, error=reason, now=now)
                logger.error("gave up on the Slack message for approval %s: %s", approval.id, reason)
                return
            delay = self._delay(row.attempts, error)
            await outbox_store.failed(conn, approval.id, owner=self._owner, error=reason, retry_at=now + delay, now=now)
        logger.warning(
            "Slack message for approval %s not sent (%s); retrying at %s", approval.id, reason, iso(now + delay)
        )

    def _delay(self, attempts: int, error: BaseException) -> float:
        wait = retry_after(error)
        if wait is not None:
            self._paused_until = max(self._paused_until, time.time() + wait)
            return wait
        backoff = self._settings.retry_initial_seconds * 2.0 ** min(attempts, 30)
        return min(self._settings.retry_max_seconds, backoff)

    async def _release(self, approval_id: str) -> None:
        async with self._db.write() as conn:
            await outbox_store.release(conn, approval_id, owner=self._owner, now=time.time())


def _votes(approval: Approval) -> str | None:
    """The approval's quorum votes as its row stores them (`approvals.votes`), to compare with what a message shows."""
    return json.dumps(list(approval.votes)) if approval.votes else None
