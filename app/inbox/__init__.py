"""The web inbox: a small page where reviewers see and decide held calls live (see the inbox issue).

Always on: `build()` returns the extension whatever the settings. It adds no review channel (the
live feed listens to the notifier, which hears every change, see `app/inbox/live.py`) and no
background work; it only serves routes (`app/inbox/routes.py`).

Modules: `routes` (pages, sign-in, decisions), `session` (the signed cookie), `csrf` (the checks on
every POST), `live` (the SSE feed), `history` (the history page's filters), `present` (sentences
and pretty-printed JSON), `render` (Jinja2), `headers` (CSP and friends).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.routing import BaseRoute

from app.approvals.channels import ReviewChannel
from app.inbox.routes import InboxRoutes, routes

if TYPE_CHECKING:
    from app.extension import Extension
    from app.runtime import Runtime


class Inbox:
    name = "inbox"

    def __init__(self, runtime: Runtime) -> None:
        public = urlsplit(runtime.settings.public_url)
        self.prefix = public.path.rstrip("/") + "/inbox"
        handlers = InboxRoutes(runtime, prefix=self.prefix, secure=public.scheme == "https")
        self.feed = handlers.feed
        self._routes = routes(handlers)

    @property
    def channels(self) -> Sequence[ReviewChannel]:
        return ()

    def routes(self) -> Sequence[BaseRoute]:
        return self._routes

    async def run(self) -> None:
        return None


def build(runtime: Runtime) -> Extension | None:
    """The web inbox extension."""
    return Inbox(runtime)
