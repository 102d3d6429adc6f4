"""How the inbox shows an approval to a person: sentences, times and pretty-printed JSON.

Agent-chosen text (names, arguments, results, reasons) is returned as it is; the templates make
hidden characters visible (`app/inbox/render.py`, on top of `app/reveal.py`). The sentences that
reach the page's script as JSON (`announcement`, `decided`, `conflict`) are revealed here, since
the script shows them as text without a template.

The sentences themselves are `app/approvals/wording.py`'s; this module picks the inbox's voice (UTC
times to the second, "you (alice)" for the viewer) and the pieces each template shows.

It reads an `Approval` (`app/approvals/model.py`), never stored JSON text.

Pure module: builds strings from an approval; no I/O.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final

from app.approvals import wording
from app.approvals.model import Approval
from app.approvals.wording import human_duration, iso
from app.reveal import reveal
from app.store.audit import AuditRow

PREVIEW_CHARS: Final = 4000
"""How much of the arguments a card on the pending page shows (the detail page shows all of them)."""
DESCRIPTION_CHARS: Final = 300
"""How much of a tool's description (from the upstream's catalog) a card and the detail page show."""


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


def tool_description(text: str | None) -> str:
    """The upstream's description of a tool, whitespace-collapsed and cut at `DESCRIPTION_CHARS`
    ("" when Airlock does not know it). The upstream wrote it, so the template reveals it."""
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= DESCRIPTION_CHARS else flat[: DESCRIPTION_CHARS - 1].rstrip() + "…"


def pretty_json(value: Any, *, limit: int | None = None) -> str:
    """`value` as indented JSON, cut at `limit` characters (hidden characters are revealed by the template)."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
    if limit is not None and len(text) > limit:
        return text[:limit] + "\n… (cut here; the detail page shows everything)"
    return text


def arguments_text(approval: Approval, *, limit: int | None = None) -> str:
    """The call's arguments pretty-printed (as stored, should they not be a JSON object)."""
    return pretty_json(approval.arguments, limit=limit) if approval.arguments is not None else approval.arguments_text


def result_text(approval: Approval) -> str | None:
    """The upstream's stored answer, the whole JSON-RPC message pretty-printed (None before the call ran)."""
    stored = approval.result
    if stored is None:
        return None
    return stored.text if stored.message is None else pretty_json(stored.message)


def result_parts(approval: Approval) -> list[tuple[str, str]]:
    """The readable parts of the upstream's answer, as (label, text): each text item, the structured
    content, or the JSON-RPC error. Text that is itself JSON is pretty-printed."""
    stored = approval.result
    if stored is None:
        return []
    if stored.error is not None:
        return [("Error", f"{stored.error.get('code')}: {stored.error.get('message')}")]
    if stored.result is None:
        return []
    parts = [("Text", _readable(text)) for text in stored.texts]
    if "structuredContent" in stored.result and not parts:
        parts.append(("Structured content", pretty_json(stored.result["structuredContent"])))
    return parts


def _readable(text: str) -> str:
    try:
        return pretty_json(json.loads(text))
    except ValueError:
        return text


VOICE: Final = wording.Voice(time=lambda t: when(t))
"""The inbox's voice: UTC times to the second; names as they are (the templates reveal them)."""


def decider(approval: Approval, viewer: str | None) -> str:
    return wording.decider(approval, VOICE, viewer)


def quorum(approval: Approval) -> str:
    """A quorum rule's progress ("1 of 2 approvals, by alice"); empty when one approval decides."""
    return wording.quorum_progress(approval, VOICE)


def outcome(approval: Approval, viewer: str | None = None) -> str:
    """One paragraph: what became of the approval, who decided, how and when."""
    return wording.account(approval, VOICE, viewer)


def label(approval: Approval) -> str:
    """The status badge: what became of the call (`tool error`, `succeeded`…), not only its status."""
    return wording.label(wording.outcome_of(approval).kind)


def kind(approval: Approval) -> str:
    """The outcome kind, for `data-outcome` and CSS."""
    return wording.outcome_of(approval).kind.value


def summary(approval: Approval) -> str:
    """A short clause for the history table (`ran; the tool reported an error: …`)."""
    return wording.phrase(wording.outcome_of(approval))


def result_line(approval: Approval) -> str:
    """What became of the call itself, above its result (`It ran, and the tool reported an error: …`)."""
    return wording.result_sentence(wording.outcome_of(approval))


def no_result(approval: Approval) -> str:
    """What the result section says when nothing was stored."""
    return wording.no_result(wording.outcome_of(approval))


def conflict(approval: Approval, viewer: str | None) -> str:
    """Why a decision came too late, for the reviewer who tried (HTTP 409)."""
    return reveal(wording.too_late(approval, VOICE, viewer))


def decided(approval: Approval, viewer: str | None) -> str:
    """The confirmation the deciding reviewer sees."""
    return reveal(wording.confirmation(approval))


def announcement(approval: Approval, viewer: str | None) -> str:
    """What a screen reader hears when an approval changes on the page."""
    return reveal(wording.announcement(approval, VOICE, viewer))


def timeline_label(entry: AuditRow) -> str:
    return entry.event.replace("_", " ")


def grant_offers(approval: Approval) -> list[tuple[str, str]]:
    """The grant scopes the approve form offers, as (value, words); empty when the rule offers none."""
    policy = approval.grant_policy
    if policy is None or approval.needs_quorum:
        return []
    return [(scope, wording.grant_offer(scope)) for scope in policy.scopes]


def grant_durations(approval: Approval) -> list[tuple[int, str]]:
    """The grant lengths the approve form offers, as (minutes, words)."""
    policy = approval.grant_policy
    if policy is None:
        return []
    return [(minutes, human_duration(minutes * 60.0)) for minutes in wording.grant_durations(policy.max_minutes)]


def grant_covers(scope: str) -> str:
    """What a grant of `scope` covers, in the words every channel uses."""
    return wording.GRANT_SCOPES.get(scope, scope)
