"""The one interface reviewer channels and optional features plug in through: `Extension`.

An extension offers review channels (told of new and changed approvals, see
`app/approvals/channels.py`), HTTP routes, and background work. The log channel, Slack, the web
inbox and any future channel (a webhook) are extensions. The composition root
(`app/runtime.py`) builds each from its own settings and hands it the narrow collaborators it
uses (the approvals service, the notifier, the database…); an extension never sees the root,
and nothing in the core imports an extension. The root adds an extension's channels to the
fan-out, runs its background work in the process's lifecycle, and `create_app` mounts its routes.

A feature that is not configured builds nothing (its `build` returns None). Deciding goes through
the approvals service (`app/approvals/service.py`), whichever extension the reviewer used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from starlette.routing import BaseRoute

from app.approvals.channels import ReviewChannel


class Extension(Protocol):
    name: str

    @property
    def channels(self) -> Sequence[ReviewChannel]:
        """Review channels to tell about new and changed approvals."""

    def routes(self) -> Sequence[BaseRoute]:
        """HTTP routes to mount on the application."""

    async def run(self) -> None:
        """Background work for the life of the process (return at once when there is none)."""


class ChannelExtension:
    """An extension that is one review channel and nothing else: no routes, no background work.

    How the log channel (and a channel handed to `create_app` by a test or an embedder) plugs in.
    """

    def __init__(self, channel: ReviewChannel) -> None:
        self.name = channel.name
        self._channels = (channel,)

    @property
    def channels(self) -> Sequence[ReviewChannel]:
        return self._channels

    def routes(self) -> Sequence[BaseRoute]:
        return ()

    async def run(self) -> None:
        return None
