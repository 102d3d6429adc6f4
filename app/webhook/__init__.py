"""The webhook review channel: signed approval events to a URL, and a signed decision endpoint.

See `docs/webhook.md`. The extension wires the parts together and owns nothing else:

- `channel.py`: a new or changed approval is noted for the outbox (never sends anything);
- `outbox.py`: the worker that writes an event per status reached and sends it, with retries,
  following every change this process hears of through the notifier (other processes' included);
- `decisions.py`: `POST /webhook/decisions`, verified and decided through the one decision path;
- `events.py` (what an event says), `signing.py` (the `Airlock-Signature` scheme).

Built only when `[webhook]` names a URL; otherwise `build()` returns None and nothing about the
webhook exists in the process.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute, Route

from app.approvals.channels import ReviewChannel
from app.approvals.service import ApprovalDesk
from app.approvals.signals import Notifier
from app.config import WebhookSettings
from app.store.db import Database
from app.webhook.channel import WebhookChannel
from app.webhook.decisions import PATH, WebhookDecisions
from app.webhook.outbox import Outbox


class WebhookExtension:
    name = "webhook"

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        public_url: str,
        db: Database,
        approvals: ApprovalDesk,
        notifier: Notifier,
        escalation_targets: frozenset[str] = frozenset(),
    ) -> None:
        self._notifier = notifier
        self.outbox = Outbox(db, settings, public_url, escalation_targets=escalation_targets)
        self.decisions = WebhookDecisions(approvals, db, settings.decision_secret or settings.secret)
        self._channels: list[ReviewChannel] = [WebhookChannel(self.outbox)]

    @property
    def channels(self) -> Sequence[ReviewChannel]:
        return self._channels

    def routes(self) -> Sequence[BaseRoute]:
        return [Route(PATH, self.decisions.handle, methods=["POST"])]

    async def run(self) -> None:
        """Run the outbox for the life of the process, noting every approval change it hears of."""
        remove = self._notifier.add_listener(self.outbox.note)
        try:
            await self.outbox.run()
        finally:
            remove()


def build(
    settings: WebhookSettings | None,
    *,
    public_url: str,
    db: Database,
    approvals: ApprovalDesk,
    notifier: Notifier,
    escalation_targets: frozenset[str] = frozenset(),
) -> WebhookExtension | None:
    """The webhook extension, or None when `[webhook]` is not configured.

    Args:
        settings: `[webhook]`.
        public_url: Airlock's address as reviewers reach it (review links in events).
        db: the outbox's tables and the decision endpoint's replay guard.
        approvals: what decisions go through (`Approvals.decide`, the one decision path).
        notifier: notes every approval change this process hears of for the outbox.
        escalation_targets: the escalation targets that send `approval.escalated` here.
    """
    if settings is None:
        return None
    return WebhookExtension(
        settings,
        public_url=public_url,
        db=db,
        approvals=approvals,
        notifier=notifier,
        escalation_targets=escalation_targets,
    )
