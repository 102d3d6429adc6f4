"""What the agent receives for an approval: the pending notice, and the final result of each outcome.

Every refusal and every "not yet" is a `CallToolResult` with `isError: true` rather than a JSON-RPC
error, because models see tool results and not protocol errors, and can act on them. Each carries
a machine-readable `_meta` entry under `APPROVAL_META_KEY`:

    {"id": "apr_…", "status": "pending", "expiresAt": "2026-11-24T10:30:00.000Z",
     "reviewUrl": "https://airlock.example/inbox/apr_…", "retry": "identical"}

`retry: "identical"` tells a client that calling the same tool with the same arguments re-attaches
to this approval instead of creating a new one. An outcome sent again to such a call after it was
delivered once (see `queue.py`, replays) also carries `"replay": true` and `"executedAt"`.

Pure module: builds dictionaries from an approval row; no I/O.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any, Final

from app.jsonrpc import tool_error_result
from app.store.approvals import ApprovalRow

APPROVAL_META_KEY: Final = "dev.airlock/approval"


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def human_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 90:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def review_url(public_url: str, approval_id: str) -> str:
    return f"{public_url}/inbox/{approval_id}"


def approval_meta(approval: ApprovalRow, public_url: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "id": approval.id,
        "status": approval.status,
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


def waiting_message(approval: ApprovalRow, public_url: str, now: float | None = None) -> str:
    """The progress message a held request shows while it waits."""
    left = approval.expires_at - (time.time() if now is None else now)
    return (f"Waiting for human approval of {approval.tool} (approval {approval.id}); "
            f"review at {review_url(public_url, approval.id)}; expires in {human_duration(left)}")


def pending_result(approval: ApprovalRow, public_url: str, *, modern: bool) -> dict[str, Any]:
    """The answer to a request whose hold budget ran out before anyone decided."""
    if approval.status == "pending":
        state = (f"A human reviewer must approve this exact call to {approval.tool} before it runs, and "
                 f"nobody has decided yet (approval {approval.id}, expires {iso(approval.expires_at)}). "
                 "It has NOT run.")
    else:
        state = (f"This call to {approval.tool} was approved by {approval.decided_by} and is running now "
                 f"(approval {approval.id}); its result is not back yet.")
    text = (f"{state} To get the outcome, call {approval.tool} again with exactly the same arguments: "
            "that call waits for the decision and returns the real result (the call never runs twice). "
            f"Reviewers: {review_url(public_url, approval.id)}")
    return tool_error_result(text, meta={APPROVAL_META_KEY: approval_meta(approval, public_url)}, modern=modern)


def too_large_text(tool: str, size: int | None, limit: int) -> str:
    """What the agent reads when a call ran but its result is larger than Airlock relays."""
    size_text = f"{size} bytes" if size is not None else f"more than {limit} bytes"
    return (f"The call to {tool} ran, but its result ({size_text}) is larger than Airlock relays "
            f"(max_response_bytes = {limit} bytes), so it was not relayed. Calling it again would run it "
            "again. Ask for a smaller result, or ask the operator to raise max_response_bytes.")


def too_large_outcome(size: int | None, limit: int) -> str:
    """The approval's outcome line (status `completed`) for a call whose result was too large to relay."""
    size_text = f"{size} bytes" if size is not None else f"more than {limit} bytes"
    return f"ran; its result ({size_text}) exceeds max_response_bytes ({limit} bytes) and was not relayed"


def final_message(approval: ApprovalRow, public_url: str, *, modern: bool, replay: bool = False) -> dict[str, Any]:
    """The `result` or `error` member of the final JSON-RPC response for a finished approval.

    Args:
        replay: the outcome was delivered before and is sent again to an identical call: say so
            (`replay`, `executedAt` in the approval metadata; an error gets them as its `data`).
    """
    approval_data = approval_meta(approval, public_url)
    if replay:
        approval_data.update(replay=True, executedAt=iso(approval.executed_at))
    meta = {APPROVAL_META_KEY: approval_data}
    if approval.status in ("completed", "failed") and approval.result:
        stored = json.loads(approval.result)
        if "result" in stored and isinstance(stored["result"], dict):
            result = dict(stored["result"])
            result["_meta"] = {**(result.get("_meta") or {}), **meta}
            return {"result": result}
        if "error" in stored:
            error = stored["error"]
            if replay and isinstance(error, dict) and "data" not in error:
                error = {**error, "data": meta}
            return {"error": error}
    text = _refusal_text(approval)
    if replay:
        text = (f"Replay: Airlock sends this stored outcome again because this exact call already ran at "
                f"{iso(approval.executed_at)} (approved by {approval.decided_by}). {text}")
    return {"result": tool_error_result(text, meta=meta, modern=modern)}


def _refusal_text(approval: ApprovalRow) -> str:
    tool, who, when = approval.tool, approval.decided_by, iso(approval.decided_at)
    reason = f" Reason: {approval.decision_reason}." if approval.decision_reason else " No reason was given."
    if approval.status == "rejected":
        return f"A human reviewer ({who}) rejected this call to {tool} at {when}.{reason} It did not run."
    if approval.status == "expired":
        return (f"Nobody approved this call to {tool} before its approval expired at {iso(approval.expires_at)}. "
                "It did not run. Ask a human before trying again.")
    if approval.status == "withdrawn":
        return (f"This call to {tool} was withdrawn before anyone approved it ({approval.decision_reason or 'the client cancelled it'}). "
                "It did not run.")
    if approval.status == "outcome_unknown":
        return (f"This call to {tool} was approved by {who}, but Airlock lost track of the upstream while it ran "
                "(a crash or a lost connection). It may or may not have taken effect. Airlock will NOT re-send it. "
                "Check the current state before trying again.")
    if approval.status == "failed":
        return (f"This call to {tool} was approved by {who} but could not be delivered to the upstream: "
                f"{approval.outcome or 'unknown error'}. It did not run.")
    return f"This call to {tool} ended with status {approval.status}."
