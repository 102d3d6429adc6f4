"""The inbox's live feed: approval changes as server-sent events, which the page's script applies.

Each browser connection subscribes to the approvals notifier (every change this process sees: its
own, other replicas' through PostgreSQL NOTIFY, other processes' through the sweeper's safety
poll) with a set of changed approval ids. The feed re-reads those approvals (through the approvals
service), because the row is the truth and a signal is only a hint (invariant 7, docs/architecture.md), and sends one
`approval` event per approval. The page supplies `present(approval)`, the event's payload (the card
rendered for this session), so this module knows nothing of HTML.

Gaps are closed the way the SSE standard intends: every event's id is the row's `updated_at`, the
browser sends the last one back as `Last-Event-ID` when it reconnects, and the feed first replays
everything changed since then (a page's first connection replays from the time it was rendered).
Replays overlap by a couple of seconds because commits land out of order; applying an event twice
is harmless. A page older than `STALE_AFTER` is told to reload instead.

An execution's end is a change like any other: the executor moves the row through the ledger, which
publishes it, so a card that said "It is about to run." is replaced by what came of the call (a
tool error reads as one: `app/approvals/wording.py`). Each card carries its row's `updated_at`
(`data-updated`), and the page never lets an older card replace a newer one: a decision's own
reply can arrive after the feed already showed the call finished.

The subscription lives exactly as long as the response's generator: sse-starlette cancels it when
the browser goes away, and the `finally` of `subscribe()` removes the listener.

Events:

    approval     {"id", "status", "pending", "html", "message"}   (the page's `present(approval)`)
    reload       {}   the page is too old to catch up; load it again
    signed-out   {}   the session ended (expired, reviewer disabled or token rotated)
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from sse_starlette.event import ServerSentEvent

from app.approvals.model import Approval
from app.approvals.service import ApprovalDesk
from app.approvals.signals import Notifier

RETRY_MS: Final = 2000
"""How long the browser waits before reconnecting a dropped feed."""
REPLAY_OVERLAP: Final = 2.0
STALE_AFTER: Final = 15 * 60.0
"""Seconds; a page whose last news is older than this reloads rather than replaying the gap."""

Present = Callable[[Approval], dict[str, Any]]
StillAllowed = Callable[[], Awaitable[bool]]


class Subscription:
    """The approvals that changed since the feed last looked (a set: ten changes to one row are one read)."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._changed = asyncio.Event()

    def add(self, approval_id: str) -> None:
        self._ids.add(approval_id)
        self._changed.set()

    async def next_batch(self, timeout: float) -> list[str]:
        """The ids changed since the last batch; waits up to `timeout` seconds for one ([] if none came)."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return []
        self._changed.clear()
        batch, self._ids = self._ids, set()
        return sorted(batch)


class LiveFeed:
    def __init__(self, approvals: ApprovalDesk, notifier: Notifier) -> None:
        self._approvals = approvals
        self._notifier = notifier
        self._subscribers = 0

    @property
    def subscribers(self) -> int:
        """Open feeds (browsers currently connected)."""
        return self._subscribers

    @contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        subscription = Subscription()
        remove = self._notifier.add_listener(subscription.add)
        self._subscribers += 1
        try:
            yield subscription
        finally:
            remove()
            self._subscribers -= 1

    async def events(
        self, *, since: float, until: float, present: Present, allowed: StillAllowed
    ) -> AsyncIterator[ServerSentEvent]:
        """The feed for one connection, from `since` (epoch seconds) until `until` (the session's end).

        `allowed()` is asked before each batch; when it says no (the reviewer was disabled), or
        `until` passes, the feed says `signed-out` and ends.
        """
        with self.subscribe() as subscription:
            yield ServerSentEvent(comment="airlock inbox feed", retry=RETRY_MS)
            if time.time() - since > STALE_AFTER:
                yield ServerSentEvent(data="{}", event="reload")
                return
            for approval_id in await self._approvals.changed_since(since - REPLAY_OVERLAP):
                subscription.add(approval_id)
            while (left := until - time.time()) > 0:
                batch = await subscription.next_batch(left)
                if not batch:
                    continue
                if not await allowed():
                    break
                for approval in await self._approvals_now(batch):
                    yield ServerSentEvent(
                        data=json.dumps(present(approval)), event="approval", id=f"{approval.updated_at:.6f}"
                    )
            yield ServerSentEvent(data="{}", event="signed-out")

    async def _approvals_now(self, approval_ids: list[str]) -> list[Approval]:
        found = [await self._approvals.get(approval_id) for approval_id in approval_ids]
        return sorted((a for a in found if a is not None), key=lambda a: a.updated_at)


def since_from(last_event_id: str | None, since: str | None, *, now: float) -> float:
    """Where a connection's replay starts: the browser's `Last-Event-ID`, else the page's `since`, else now."""
    for value in (last_event_id, since):
        try:
            parsed = float(value or "")
        except ValueError:
            continue
        if math.isfinite(parsed):
            return min(parsed, now)
    return now
