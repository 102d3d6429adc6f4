"""The web inbox: a small page where reviewers see and decide held calls live (see the inbox issue).

Always on: `build()` returns the extension whatever the settings, given the narrow collaborators
the composition root (`app/runtime.py`) hands it. It adds no review channel (the
live feed listens to the notifier, which hears every change, see `app/inbox/live.py`) and no
background work; it only serves routes (`app/inbox/routes.py`).

Modules: `routes` (pages, sign-in, decisions), `sso` (single sign-on through an OpenID provider),
`admission` (who may review, from the provider's claims), `session` (the signed cookie), `csrf` (the checks on
every POST), `live` (the SSE feed), `history` (the history page's filters), `present` (sentences
and pretty-printed JSON), `render` (Jinja2), `headers` (CSP and friends).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from starlette.routing import BaseRoute

from app.approvals.channels import ReviewChannel
from app.approvals.service import ApprovalDesk
from app.approvals.signals import Notifier
from app.auth import Credentials
from app.config import InboxOidcSettings
from app.inbox.routes import InboxRoutes, routes
from app.store.db import Database
from app.upstream import Upstream


class Inbox:
    name = "inbox"

    def __init__(self, handlers: InboxRoutes, *, prefix: str) -> None:
        self.prefix = prefix
        self.feed = handlers.feed
        self._routes = routes(handlers)

    @property
    def channels(self) -> Sequence[ReviewChannel]:
        return ()

    def routes(self) -> Sequence[BaseRoute]:
        return self._routes

    async def run(self) -> None:
        return None


def build(
    *,
    public_url: str,
    secret_key: str,
    db: Database,
    approvals: ApprovalDesk,
    notifier: Notifier,
    credentials: Credentials,
    upstreams: Mapping[str, Upstream],
    oidc: InboxOidcSettings | None = None,
) -> Inbox:
    """The web inbox extension, served under `public_url`'s path.

    Args:
        public_url: Airlock's address as reviewers reach it; its path prefixes `/inbox`, and an
            https address marks the session cookie `Secure`.
        secret_key: signs the session cookie.
        db: reads the audit log and reviewer sessions.
        approvals: the approvals service: what the pages show, and the one decision path.
        notifier: feeds the live page every approval change this process hears of.
        credentials: checks a reviewer's token at sign-in.
        upstreams: the upstreams by name, for their tools' descriptions (filled when the process starts).
        oidc: `[inbox.oidc]`: reviewers may also sign in through an OpenID provider (`app/inbox/sso.py`).
    """
    public = urlsplit(public_url)
    prefix = public.path.rstrip("/") + "/inbox"
    handlers = InboxRoutes(
        db=db,
        approvals=approvals,
        notifier=notifier,
        credentials=credentials,
        upstreams=upstreams,
        public_url=public_url,
        secret_key=secret_key,
        prefix=prefix,
        secure=public.scheme == "https",
        oidc=oidc,
    )
    return Inbox(handlers, prefix=prefix)
