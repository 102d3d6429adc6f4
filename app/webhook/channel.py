"""The webhook as a review channel: a new or changed approval notes it for the outbox.

Told after the approval's transaction committed, in the process that made the change; it only
notes the id, so the receiver being slow or down never holds up the agent's call. Changes made by
other processes reach the outbox through the notifier listener (`app/webhook/__init__.py`), and
anything both miss through the outbox's reconcile (`app/webhook/outbox.py`).
"""

from __future__ import annotations

from app.approvals.model import Approval
from app.webhook.outbox import Outbox


class WebhookChannel:
    name = "webhook"

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def parked(self, approval: Approval) -> None:
        self._outbox.note(approval.id)

    async def changed(self, approval: Approval) -> None:
        self._outbox.note(approval.id)
