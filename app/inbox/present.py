"""How the inbox shows an approval to a person: sentences, times and pretty-printed JSON.

Agent-chosen text (names, arguments, results, reasons) is returned as it is; the templates make
hidden characters visible (`app/inbox/render.py`, on top of `app/reveal.py`). The sentences that
reach the page's script as JSON (`announcement`, `decided`, `conflict`) are revealed here, since
the script shows them as text without a template.

Pure module: builds strings from an approval row; no I/O.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final

from app.approvals.outcomes import human_duration, iso
from app.reveal import reveal
from app.store.approvals import ApprovalRow
from app.store.audit import AuditRow

PREVIEW_CHARS: Final = 4000
"""How much of the arguments a card on the pending page shows (the detail page shows all of them)."""

_VIA: Final = {"api": "the API", "cli": "the CLI", "slack": "Slack", "inbox": "the inbox", "client": "the agent",
                "continuation": "a continuation"}


def when(timestamp: float | None) -> str:
    """A readable UTC time to the second, e.g. `2026-11-24 10:30:05 UTC`."""
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def machine_time(timestamp: float | None) -> str:
    """The `datetime` attribute of a `<time>` element (ISO 8601, UTC)."""
    return iso(timestamp) or ""


def ago(timestamp: float, now: float) -> str:
    return f"{human_duration(now - timestamp)} ago"


def time_left(expires_at: float, now: float) -> str:
    return f"in {human_duration(expires_at - now)}" if expires_at > now else "now"


def pretty_json(value: Any, *, limit: int | None = None) -> str:
    """`value` as indented JSON, cut at `limit` characters (hidden characters are revealed by the template)."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
    if limit is not None and len(text) > limit:
        return text[:limit] + "\n… (cut here; the detail page shows everything)"
    return text


def arguments_text(row: ApprovalRow, *, limit: int | None = None) -> str:
    return pretty_json(json.loads(row.arguments), limit=limit)


def result_text(row: ApprovalRow) -> str | None:
    """The upstream's stored answer, the whole JSON-RPC message pretty-printed (None before the call ran)."""
    return None if row.result is None else pretty_json(json.loads(row.result))


def result_parts(row: ApprovalRow) -> list[tuple[str, str]]:
    """The readable parts of the upstream's answer, as (label, text): each text item, the structured
    content, or the JSON-RPC error. Text that is itself JSON is pretty-printed."""
    stored = json.loads(row.result) if row.result else {}
    if isinstance(stored.get("error"), dict):
        error = stored["error"]
        return [("Error", f"{error.get('code')}: {error.get('message')}")]
    result = stored.get("result")
    if not isinstance(result, dict):
        return []
    parts = [("Text", _readable(item["text"])) for item in result.get("content") or []
             if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str)]
    if "structuredContent" in result and not parts:
        parts.append(("Structured content", pretty_json(result["structuredContent"])))
    return parts


def _readable(text: str) -> str:
    try:
        return pretty_json(json.loads(text))
    except ValueError:
        return text


def decider(row: ApprovalRow, viewer: str | None) -> str:
    name = row.decided_by or "someone"
    return f"you ({name})" if name == viewer else name


def outcome(row: ApprovalRow, viewer: str | None = None) -> str:
    """One sentence: what became of the approval, who decided, how and when."""
    who, at, via = decider(row, viewer), when(row.decided_at), _VIA.get(row.decided_via or "", row.decided_via)
    reason = f" Reason: {row.decision_reason}" if row.decision_reason else ""
    if row.status == "pending":
        return f"Waiting for a decision; expires {when(row.expires_at)}."
    if row.status == "expired":
        return f"Expired at {when(row.finished_at or row.expires_at)}: nobody decided in time. It did not run."
    if row.status == "withdrawn":
        return f"Withdrawn by the agent at {at} before anyone decided.{reason} It did not run."
    if row.status == "rejected":
        return f"Rejected by {who} via {via} at {at}.{reason} It did not run."
    return f"Approved by {who} via {via} at {at}.{reason} {_after_approval(row)}"


def _after_approval(row: ApprovalRow) -> str:
    return {
        "approved": "It is about to run.",
        "executing": "It is running now.",
        "completed": "It ran.",
        "failed": f"It could not be delivered to the upstream: {row.outcome or 'unknown error'}.",
        "outcome_unknown": "Airlock lost track of the upstream while it ran; it may or may not have taken effect.",
    }.get(row.status, f"Now {row.status}.")


def conflict(row: ApprovalRow, viewer: str | None) -> str:
    """Why a decision came too late, for the reviewer who tried (HTTP 409)."""
    if row.status in ("pending", "expired"):
        return f"Too late: this call expired at {when(row.expires_at)} before anyone decided. It did not run."
    if row.status == "withdrawn":
        return f"Too late: the agent withdrew this call at {when(row.decided_at)}. It did not run."
    verb = "rejected" if row.status == "rejected" else "approved"
    via = _VIA.get(row.decided_via or "", row.decided_via)
    return reveal(f"Too late: {decider(row, viewer)} already {verb} this call via {via} at {when(row.decided_at)}.")


def decided(row: ApprovalRow, viewer: str | None) -> str:
    """The confirmation the deciding reviewer sees."""
    verb = "rejected" if row.status == "rejected" else "approved"
    return reveal(f"You {verb} {row.tool} for {row.agent} ({row.id}).")


def announcement(row: ApprovalRow, viewer: str | None) -> str:
    """What a screen reader hears when an approval changes on the page."""
    if row.status == "pending":
        return reveal(f"New approval: {row.agent} wants to call {row.tool} on {row.upstream}.")
    return reveal(f"{row.tool} for {row.agent}: {outcome(row, viewer)}")


def timeline_label(entry: AuditRow) -> str:
    return entry.event.replace("_", " ")
