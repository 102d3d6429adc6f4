"""Slack approvals: a message with Approve/Reject buttons for each held call (see `docs/slack.md`).

The extension wires four parts together and owns nothing else:

- `channel.py`: a new approval queues its message in the durable outbox (never calls Slack);
- `outbox.py`: the worker that posts and updates messages, with retries, following every change
  this process hears of through the notifier (including changes other processes made);
- `interactions.py`: `POST /slack/interactions`, where clicks are verified, mapped to a reviewer
  (`reviewers.py`) and decided through the one decision path;
- `socket_mode.py`: with `[slack] mode = "socket"`, the same clicks arriving over Socket Mode
  WebSockets instead (no public URL, no `/slack/interactions` route), handled by the same
  `SlackInteractions.respond()`;
- `blocks.py` (what the message looks like), `payloads.py` (what Slack sends), `webapi.py` (the
  Slack calls).

Built only when Slack is configured (`SlackSettings.enabled`); otherwise `build()` returns None and
nothing about Slack exists in the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from starlette.routing import BaseRoute, Route

from app.approvals.channels import ReviewChannel
from app.approvals.service import ApprovalDesk
from app.approvals.signals import Notifier
from app.config import SlackSettings
from app.slack.channel import SlackChannel
from app.slack.interactions import PATH, SlackInteractions
from app.slack.outbox import Outbox
from app.slack.reviewers import SlackReviewers
from app.slack.socket_mode import SocketMode
from app.slack.webapi import SlackApi
from app.store.db import Database


class SlackExtension:
    name = "slack"

    def __init__(
        self,
        settings: SlackSettings,
        *,
        public_url: str,
        db: Database,
        approvals: ApprovalDesk,
        notifier: Notifier,
        escalation_channels: Mapping[str, str] | None = None,
    ) -> None:
        self._notifier = notifier
        self.api = SlackApi(settings)
        self.outbox = Outbox(db, approvals, self.api, settings, public_url, escalation_channels=escalation_channels)
        self.reviewers = SlackReviewers(settings, db, self.api)
        self.interactions = SlackInteractions(approvals, db, settings, self.api, self.reviewers, public_url)
        self._channels: list[ReviewChannel] = [SlackChannel(self.outbox)]
        self.socket_mode = SocketMode(settings, self.interactions) if settings.mode == "socket" else None

    @property
    def channels(self) -> Sequence[ReviewChannel]:
        return self._channels

    def routes(self) -> Sequence[BaseRoute]:
        if self.socket_mode is not None:
            return ()
        return [Route(PATH, self.interactions.handle, methods=["POST"])]

    async def run(self) -> None:
        """Run the outbox for the life of the process, woken by every approval change it hears of,
        and in socket mode the Socket Mode connections beside it (which never stop the outbox)."""
        remove = self._notifier.add_listener(self.outbox.kick)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.outbox.run(), name="slack-outbox")
                if self.socket_mode is not None:
                    group.create_task(self.socket_mode.run(), name="slack-socket-mode")
        finally:
            remove()


def build(
    settings: SlackSettings,
    *,
    public_url: str,
    db: Database,
    approvals: ApprovalDesk,
    notifier: Notifier,
    escalation_channels: Mapping[str, str] | None = None,
) -> SlackExtension | None:
    """The Slack extension, or None when Slack is not configured.

    Args:
        settings: `[slack]`.
        public_url: Airlock's address as reviewers reach it (review links in messages).
        db: the outbox's and the reviewer links' tables.
        approvals: the approvals service that clicks decide through and messages are rendered from.
        notifier: wakes the outbox on every approval change this process hears of.
        escalation_channels: the Slack channel of each escalation target that has one.
    """
    if not settings.enabled:
        return None
    return SlackExtension(
        settings,
        public_url=public_url,
        db=db,
        approvals=approvals,
        notifier=notifier,
        escalation_channels=escalation_channels,
    )
