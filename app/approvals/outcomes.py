"""What the agent receives for an approval: the pending notice, and the final result of each outcome.

Every refusal and every "not yet" is a `CallToolResult` with `isError: true` rather than a JSON-RPC
error, because models see tool results and not protocol errors, and can act on them. Each carries
a machine-readable `_meta` entry under `APPROVAL_META_KEY`:

    {"id": "apr_…", "status": "pending", "expiresAt": "2026-11-24T10:30:00.000Z",
     "reviewUrl": "https://airlock.example/inbox/apr_…", "retry": "identical"}

`retry: "identical"` tells a client that calling the same tool with the same arguments re-attaches
to this approval instead of creating a new one. An outcome sent again to such a call after it was
delivered once (see `queue.py`, replays) also carries `"replay": true` and `"executedAt"`.

The metadata also carries `"outcome"`, the approval's outcome kind (`app/approvals/wording.py`,
e.g. `"tool_error"` for a call that ran and whose tool reported an error).

Pure module: builds dictionaries from an `Approval` (`app/approvals/model.py`); no I/O. The sentences are
`app/approvals/wording.py`'s; this module only puts them into MCP results.
"""

from __future__ import annotations

from typing import Any, Final

from app.approvals.model import Approval, Status
from app.approvals.wording import (
    agent_not_yet,
    agent_refusal,
    agent_replay,
    agent_waiting,
    human_duration,
    iso,
    outcome_of,
    review_url,
    too_large_outcome,
    too_large_text,
)
from app.jsonrpc import tool_error_result

__all__ = [
    "APPROVAL_META_KEY",
    "approval_meta",
    "final_message",
    "human_duration",
    "iso",
    "pending_result",
    "review_url",
    "too_large_outcome",
    "too_large_text",
    "waiting_message",
]

APPROVAL_META_KEY: Final = "dev.airlock/approval"


def approval_meta(approval: Approval, public_url: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "id": approval.id,
        "status": approval.status.value,
        "outcome": outcome_of(approval).kind.value,
        "expiresAt": iso(approval.expires_at),
        "reviewUrl": review_url(public_url, approval.id),
        "retry": "identical",
    }
    if approval.decided_by:
        meta["decidedBy"] = approval.decided_by
        meta["decidedAt"] = iso(approval.decided_at)
    if approval.decision_reason:
        meta["reason"] = approval.decision_reason
    return meta


def waiting_message(approval: Approval, public_url: str, now: float) -> str:
    """The progress message a held request shows at `now` while it waits."""
    left = approval.expires_at - now
    return agent_waiting(approval, review_url(public_url, approval.id), left)


def pending_result(approval: Approval, public_url: str, *, modern: bool) -> dict[str, Any]:
    """The answer to a request whose hold budget ran out before anyone decided."""
    text = agent_not_yet(approval, review_url(public_url, approval.id))
    return tool_error_result(text, meta={APPROVAL_META_KEY: approval_meta(approval, public_url)}, modern=modern)


def final_message(approval: Approval, public_url: str, *, modern: bool, replay: bool = False) -> dict[str, Any]:
    """The `result` or `error` member of the final JSON-RPC response for a finished approval.

    Args:
        replay: the outcome was delivered before and is sent again to an identical call: say so
            (`replay`, `executedAt` in the approval metadata; an error gets them as its `data`).
    """
    approval_data = approval_meta(approval, public_url)
    if replay:
        approval_data.update(replay=True, executedAt=iso(approval.executed_at))
    meta = {APPROVAL_META_KEY: approval_data}
    stored = approval.result.message if approval.result is not None else None
    if approval.status in (Status.COMPLETED, Status.FAILED) and stored is not None:
        if "result" in stored and isinstance(stored["result"], dict):
            result = dict(stored["result"])
            result["_meta"] = {**(result.get("_meta") or {}), **meta}
            return {"result": result}
        if "error" in stored:
            error = stored["error"]
            if replay and isinstance(error, dict) and "data" not in error:
                error = {**error, "data": meta}
            return {"error": error}
    text = agent_refusal(approval)
    if replay:
        text = agent_replay(approval, text)
    return {"result": tool_error_result(text, meta=meta, modern=modern)}
