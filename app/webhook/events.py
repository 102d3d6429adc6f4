"""What the webhook sends: one event per status an approval reaches, as JSON (`docs/webhook.md`).

An approval's statuses form a path (`docs/architecture.md`, "Approval states"), and the current
status says the whole path: a `completed` approval was `pending`, then `approved`, then
`executing`. So whoever notices a change, however late, writes the events of every status on the
path that has none yet, each at its place (`seq`); a status that came and went before anyone
looked is still announced, in order, worded as of that status.

Event types: `approval.parked` (pending), then `approval.<status>`. The body's `sequence` is the
status's place on the path, the same for every attempt and every replica.

`approval.escalated` (`app/approvals/escalation.py`) is not a status: it is written once, at
`ESCALATED_SEQ` (0), while the approval is still pending, for rules whose `[escalation.<name>]`
target sets `webhook = true`. The outbox sends it after `parked` and before every decision event
(`app/store/webhook_outbox.py`), so a receiver never hears of an escalation after the decision.

Pure module: an `Approval` in, bytes out; no I/O.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Final

from app.approvals.model import Approval, Status
from app.approvals.wording import (
    Voice,
    account,
    escalation_sentence,
    iso,
    outcome_of,
    quorum_progress,
    review_url,
    title,
)
from app.store import webhook_outbox

PARKED: Final = "parked"
ESCALATED: Final = "escalated"
ESCALATED_SEQ: Final = webhook_outbox.ESCALATED_SEQ

_PATHS: Final[dict[Status, tuple[Status, ...]]] = {
    Status.PENDING: (Status.PENDING,),
    Status.APPROVED: (Status.PENDING, Status.APPROVED),
    Status.EXECUTING: (Status.PENDING, Status.APPROVED, Status.EXECUTING),
    Status.COMPLETED: (Status.PENDING, Status.APPROVED, Status.EXECUTING, Status.COMPLETED),
    Status.FAILED: (Status.PENDING, Status.APPROVED, Status.EXECUTING, Status.FAILED),
    Status.OUTCOME_UNKNOWN: (Status.PENDING, Status.APPROVED, Status.EXECUTING, Status.OUTCOME_UNKNOWN),
    Status.REJECTED: (Status.PENDING, Status.REJECTED),
    Status.EXPIRED: (Status.PENDING, Status.EXPIRED),
    Status.WITHDRAWN: (Status.PENDING, Status.WITHDRAWN),
}
_VOICE: Final = Voice(time=lambda at: iso(at) or "an unknown time")


def event_name(status: Status) -> str:
    """The event a status is announced as (`parked` for pending): what `[webhook] events` lists."""
    return PARKED if status is Status.PENDING else status.value


def path(status: Status) -> tuple[Status, ...]:
    """Every status an approval now at `status` went through, in order; seq is the 1-based place."""
    return _PATHS[status]


def steps(approval: Approval) -> list[tuple[int, Status]]:
    """(seq, status) of every status `approval` went through: its path, without `pending` for a
    continuation (`app/approvals/queue.py` inserts those already approved; nobody was asked)."""
    return [
        (seq, status)
        for seq, status in enumerate(path(approval.status), start=1)
        if not (status is Status.PENDING and approval.continues is not None)
    ]


def as_of(approval: Approval, status: Status) -> Approval:
    """`approval` as it stood when it reached `status` (an earlier place on its path)."""
    if status is approval.status:
        return approval
    earlier = dataclasses.replace(
        approval, status=status, result=None, outcome=None, finished_at=None, executed_at=None, delivered_at=None
    )
    if status is Status.PENDING:
        return dataclasses.replace(
            earlier, decided_by=None, decided_via=None, decided_at=None, decision_reason=None, votes=()
        )
    return earlier


def body(
    approval: Approval, *, event_id: str, seq: int, public_url: str, now: float, event: str | None = None
) -> bytes:
    """The JSON body of the event for `approval` (already `as_of` the event's status).

    Args:
        event: the event's name when it is not the status's (`ESCALATED`).
    """
    outcome = outcome_of(approval)
    document: dict[str, Any] = {
        "id": event_id,
        "type": f"approval.{event or event_name(approval.status)}",
        "created": iso(now),
        "sequence": seq,
        "approval": {
            "id": approval.id,
            "status": approval.status.value,
            "agent": approval.agent,
            "upstream": approval.upstream,
            "tool": approval.tool,
            "arguments": approval.arguments,
            "policy": {"rule": approval.policy_rule, "reason": approval.policy_reason},
            "created_at": iso(approval.created_at),
            "expires_at": iso(approval.expires_at),
            "decided_by": approval.decided_by,
            "decided_via": approval.decided_via,
            "decided_at": iso(approval.decided_at),
            "decision_reason": approval.decision_reason,
            "quorum": {
                "needed": approval.quorum,
                "approvals": list(approval.votes),
                "progress": quorum_progress(approval, _VOICE) or None,
            },
            "outcome": {"kind": outcome.kind.value, "title": title(outcome.kind), "summary": account(approval, _VOICE)},
            "review_url": review_url(public_url, approval.id),
            "escalation": _escalation(approval),
        },
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _escalation(approval: Approval) -> dict[str, Any] | None:
    """Where and when `approval` was escalated, in words too; None until it was."""
    if approval.escalated_at is None:
        return None
    return {"to": approval.escalate_to, "at": iso(approval.escalated_at), "summary": escalation_sentence(approval)}
