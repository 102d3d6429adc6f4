"""The seam optional features plug into: review channels, HTTP routes, and background work.

Slack and the web inbox are extensions: `Runtime` builds each from its settings (a feature that is
not configured builds nothing), adds its review channels to the fan-out, runs its background
work in the runtime's lifecycle, and `create_app` mounts its routes. Extensions reach the core
only through the runtime (decisions through `app/approvals/decisions.py`, changes through the
notifier's listeners), never the other way round.
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
