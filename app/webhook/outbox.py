"""The webhook's durable outbox: write an event for every status an approval reaches, then send it.

Two duties, one worker per Airlock process (the shape of `app/slack/outbox.py`):

- **write**: for each approval it hears of (`note()`: the channel hook after a commit, and the
  notifier listener that hears every process's changes, the CLI's included), the events of every
  status on the approval's path that has none yet (`app/webhook/events.py`). A row per
  (approval, seq) is inserted once however many processes try. A crash between a commit and the
  write is covered by each pass's reconcile: approvals changed since a little before the newest
  event row are looked at again (at most a day back), which also covers changes made while no
  Airlock was serving.
- **send**: POST each due event, signed (`app/webhook/signing.py`), with a fresh timestamp per
  attempt over the same body; the receiver dedupes on `Airlock-Event-Id`. 2xx delivers; a 429
  waits exactly its `Retry-After` (and pauses this worker's sends until then); anything else (5xx,
  other 4xx, a timeout, a refused connection) is retried with exponential backoff from
  `retry_initial_seconds` to `retry_max_seconds`. After `give_up_after_seconds` since the event
  was written, it is given up with an error log line (the row keeps `last_error`).

Per-approval order: an event is sent only once every earlier event of its approval is settled
(`app/store/webhook_outbox.py`), so a later status never overtakes an earlier one; events of
different approvals do not wait for each other. Replicas take a row with a lease first.

Deliberate departures:
- A 4xx other than 429 is retried like a 5xx rather than dropped at once: a receiver refusing
  signatures during a secret rotation must not lose events. The give-up bound still applies.
- Redirects are not followed (a 3xx is a failed attempt): the body and its signature are for the
  configured URL, and a receiver that moved is a configuration to fix, not to chase.
- No metric counts given-up events: `app/metrics.py` has no hook for it yet; the error log line
  and `last_error` are the signal. TODO(webhook owner, issue 18): a counter once metrics are
  handed to extensions.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import secrets
import socket
import time
from typing import Final

import aiohttp

from app.approvals.model import Approval, Status
from app.approvals.wording import iso
from app.config import WebhookSettings
from app.store import approvals as approval_store
from app.store import webhook_outbox as store
from app.store.db import Database
from app.store.webhook_outbox import EventRow
from app.webhook import events
from app.webhook.signing import ATTEMPT_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER, sign

logger = logging.getLogger("airlock.webhook")

USER_AGENT: Final = "Airlock-Webhook/1"
_RECONCILE_LOOKBACK: Final = 86400.0
"""The furthest back a reconcile looks for approvals whose events were never written."""
_RECONCILE_MARGIN_POLLS: Final = 2


class RetryAfter(Exception):
    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = seconds


class Outbox:
    def __init__(
        self,
        db: Database,
        settings: WebhookSettings,
        public_url: str,
        *,
        escalation_targets: frozenset[str] = frozenset(),
    ) -> None:
        """Args:
        escalation_targets: the `[escalation.<name>]` targets with `webhook = true`.
        """
        self._db = db
        self._escalation_targets = escalation_targets
        self._settings = settings
        self._public_url = public_url
        self._owner = f"{socket.gethostname()[:40]}:{secrets.token_hex(6)}"
        self._kick = asyncio.Event()
        self._noted: set[str] = set()
        self._paused_until = 0.0
        self._reconciled_at = 0.0
        self._session: aiohttp.ClientSession | None = None
        self.passes = 0
        """Completed passes (for tests that wait for the worker to catch up)."""

    def note(self, approval_id: str) -> None:
        """`approval_id` changed: write its missing events on the next pass, which starts now."""
        self._noted.add(approval_id)
        self._kick.set()

    async def run(self) -> None:
        """Work until cancelled: a pass whenever noted, when a retry falls due, and every `poll_seconds`."""
        async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as session:
            self._session = session
            while True:
                self._kick.clear()
                try:
                    delay = await self.work()
                except Exception:
                    logger.exception("webhook outbox pass failed; retrying")
                    delay = self._settings.poll_seconds
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), timeout=delay)

    async def work(self) -> float:
        """One pass: write missing events, then send what is due. Returns how long to wait before the next."""
        await self._reconcile()
        noted, self._noted = self._noted, set()
        for approval_id in noted:
            await self.write(approval_id)
        async with self._db.read() as conn:
            due = await store.due(conn, time.time())
        for event_id in due:
            if time.time() < self._paused_until:
                break
            await self._send(event_id)
        async with self._db.read() as conn:
            next_attempt = await store.next_attempt(conn)
        self.passes += 1
        delay = self._settings.poll_seconds
        if next_attempt is not None:
            delay = min(delay, max(next_attempt, self._paused_until) - time.time())
        return max(delay, 0.01)

    async def write(self, approval_id: str) -> int:
        """Write the events `approval_id`'s path still lacks; returns how many were new.

        Reads first and writes only when something is missing: the reconcile looks at every recent
        change on each poll, and a write transaction on SQLite holds the one writer's lock.
        """
        now = time.time()
        async with self._db.read() as conn:
            row = await approval_store.get(conn, approval_id)
            written = await store.seqs(conn, approval_id)
        if row is None:
            return 0
        approval = Approval.from_row(row)
        missing = [
            self._event(approval, seq, status, now)
            for seq, status in events.steps(approval)
            if seq not in written and events.event_name(status) in self._settings.events
        ]
        if self._escalation_due(approval, written):
            missing.append(self._event(approval, events.ESCALATED_SEQ, approval.status, now, event=events.ESCALATED))
        if not missing:
            return 0
        async with self._db.write() as conn:
            return await store.add(conn, missing)

    def _escalation_due(self, approval: Approval, written: set[int]) -> bool:
        # Only while pending: a receiver that pages people must not page them for a decided call.
        return (
            approval.escalated_at is not None
            and approval.status is Status.PENDING
            and approval.escalate_to in self._escalation_targets
            and events.ESCALATED in self._settings.events
            and events.ESCALATED_SEQ not in written
        )

    def _event(
        self, approval: Approval, seq: int, status: Status, now: float, *, event: str | None = None
    ) -> dict[str, object]:
        """The outbox row of `approval`'s event at `status` (or `event`), with a new id and its body."""
        event_id = f"evt_{secrets.token_hex(16)}"
        body = events.body(
            events.as_of(approval, status),
            event_id=event_id,
            seq=seq,
            public_url=self._public_url,
            now=now,
            event=event,
        )
        return {
            "event_id": event_id,
            "approval_id": approval.id,
            "seq": seq,
            "event": event or events.event_name(status),
            "body": body.decode(),
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }

    async def _reconcile(self) -> None:
        """Look again at approvals changed lately (at most once per poll, not on every wake-up)."""
        now = time.time()
        if now - self._reconciled_at < self._settings.poll_seconds:
            return
        margin = _RECONCILE_MARGIN_POLLS * self._settings.poll_seconds
        if self._reconciled_at:
            since = self._reconciled_at - margin
        else:
            async with self._db.read() as conn:
                last = await store.last_written_at(conn)
            since = max(now - _RECONCILE_LOOKBACK, (last if last is not None else now) - margin)
        async with self._db.read() as conn:
            changed = await store.changed_since(conn, since)
        for approval_id, _updated_at in changed:
            if await self.write(approval_id):
                logger.info("wrote missed webhook events for approval %s", approval_id)
        self._reconciled_at = now

    async def _send(self, event_id: str) -> None:
        now = time.time()
        async with self._db.write() as conn:
            if not await store.claim(
                conn, event_id, owner=self._owner, now=now, lease_until=now + self._settings.lease_seconds
            ):
                return
            row = await store.get(conn, event_id)
        assert row is not None
        try:
            await self._post(row)
        except Exception as exc:
            await self._failed(row, exc)
            return
        async with self._db.write() as conn:
            await store.delivered(conn, event_id, owner=self._owner, now=time.time())
        logger.info("webhook event %s (%s of approval %s) delivered", row.event_id, row.event, row.approval_id)

    async def _post(self, row: EventRow) -> None:
        assert self._session is not None, "the outbox sends only while run() runs"
        body = row.body.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._settings.secret, int(time.time()), body),
            EVENT_ID_HEADER: row.event_id,
            ATTEMPT_HEADER: str(row.attempts),
        }
        timeout = aiohttp.ClientTimeout(total=self._settings.timeout_seconds)
        post = self._session.post(
            self._settings.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        )
        async with post as response:
            if 200 <= response.status < 300:
                return
            reason = f"HTTP {response.status}"
            if response.status == 429:
                raise RetryAfter(_retry_after(response.headers.get("Retry-After")), reason)
            raise RuntimeError(reason)

    async def _failed(self, row: EventRow, error: BaseException) -> None:
        now = time.time()
        reason = _describe(error)
        async with self._db.write() as conn:
            if now - row.created_at >= self._settings.give_up_after_seconds:
                await store.give_up(conn, row.event_id, owner=self._owner, error=reason, now=now)
                logger.error(
                    "gave up on webhook event %s (%s of approval %s) after %d attempts: %s",
                    row.event_id,
                    row.event,
                    row.approval_id,
                    row.attempts,
                    reason,
                )
                return
            delay = self._delay(row.attempts, error)
            await store.failed(conn, row.event_id, owner=self._owner, error=reason, retry_at=now + delay, now=now)
        logger.warning(
            "webhook event %s for approval %s not delivered (%s); retrying at %s",
            row.event_id,
            row.approval_id,
            reason,
            iso(now + delay),
        )

    def _delay(self, attempts: int, error: BaseException) -> float:
        if isinstance(error, RetryAfter):
            self._paused_until = max(self._paused_until, time.time() + error.seconds)
            return error.seconds
        backoff = self._settings.retry_initial_seconds * 2.0 ** min(max(attempts - 1, 0), 30)
        return min(self._settings.retry_max_seconds, backoff)


def _retry_after(value: str | None) -> float:
    """Seconds to wait from a `Retry-After` header (seconds or an HTTP date); 1 when absent or unreadable."""
    if value is None:
        return 1.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    return 1.0


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__
