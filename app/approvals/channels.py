"""Reviewer-facing channels: how people learn that a call waits for them, and what became of it.

One small interface, `ReviewChannel`, that the log, Slack and the web inbox implement. Channels are
told after the approval's transaction committed (the row exists before any message about it), and
must not block: anything slow or fallible (Slack's API) goes through the channel's own durable
queue. Channels never decide; deciding goes through the approvals service (`app/approvals/service.py`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Final, Protocol

from app.approvals.model import Approval
from app.approvals.outcomes import review_url
from app.reveal import reveal

logger = logging.getLogger("airlock.approvals")


class ReviewChannel(Protocol):
    name: str

    async def parked(self, approval: Approval) -> None:
        """A new approval waits for a decision."""

    async def changed(self, approval: Approval) -> None:
        """An approval moved (decided, expired, withdrawn, executed, delivered)."""


class LogChannel:
    """Logs each new approval with its id and review URL, and each change of status, once.

    The ledger tells channels of every change an approval goes through, and some are not a change
    of status (the outcome reaching the agent), so this channel remembers the status it last logged
    for recent approvals: "completed by carol" then appears once, not again on delivery.
    """

    name = "log"
    _REMEMBERED: Final = 10_000

    def __init__(self, public_url: str) -> None:
        self._public_url = public_url
        self._logged: OrderedDict[str, str] = OrderedDict()

    async def parked(self, approval: Approval) -> None:
        logger.warning(
            "approval needed: %s wants %s on %s (approval %s) - review at %s or run `airlock approvals approve %s`",
            reveal(approval.agent, line=True),
            reveal(approval.tool, line=True),
            reveal(approval.upstream, line=True),
            approval.id,
            review_url(self._public_url, approval.id),
            approval.id,
        )

    async def changed(self, approval: Approval) -> None:
        if self._logged.get(approval.id) == approval.status.value:
            return
        self._logged[approval.id] = approval.status.value
        self._logged.move_to_end(approval.id)
        if len(self._logged) > self._REMEMBERED:
            self._logged.popitem(last=False)
        by = f" by {reveal(approval.decided_by, line=True)}" if approval.decided_by else ""
        logger.info("approval %s (%s): %s%s", approval.id, reveal(approval.tool, line=True), approval.status.value, by)


class ChannelFanout:
    """Tells every configured channel; a failing channel is logged and never affects the others."""

    def __init__(self, channels: Sequence[ReviewChannel]) -> None:
        self.channels = list(channels)

    async def parked(self, approval: Approval) -> list[str]:
        """Tell every channel; returns the names of those that took it."""
        told: list[str] = []
        for channel in self.channels:
            try:
                await channel.parked(approval)
                told.append(channel.name)
            except Exception:
                logger.exception("review channel %s failed on a new approval", channel.name)
        return told

    async def changed(self, approval: Approval) -> None:
        for channel in self.channels:
            try:
                await channel.changed(approval)
            except Exception:
                logger.exception("review channel %s failed on a change", channel.name)
