"""Slack as a review channel: a new approval queues its message in the durable outbox.

`parked()` runs after the approval's transaction committed, in the process that parked it, and
only inserts an outbox row: it never talks to Slack, so Slack being slow or down cannot hold up the
agent's call. Changes need nothing here: `changed()` is told only in the process that made the
change (perhaps the CLI, with no Slack at all), so messages follow changes through the notifier
listener that every Airlock process runs (see `app/slack/outbox.py`); `changed()` merely wakes the
local worker early.
"""

from __future__ import annotations

from app.approvals.model import Approval
from app.slack.outbox import Outbox


class SlackChannel:
    name = "slack"

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def parked(self, approval: Approval) -> None:
        await self._outbox.enqueue(approval)

    async def changed(self, approval: Approval) -> None:
        self._outbox.kick(approval.id)
