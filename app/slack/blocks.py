"""Block Kit for an approval: the channel message (with buttons while pending, the outcome after), the
reject-reason modal, and their plain-text fallbacks.

Pure module: builds dictionaries from an approval row; no I/O.

Everything that came from an agent (tool name, arguments, agent and upstream names, results) is
untrusted text. In `mrkdwn` it is escaped (`&`, `<`, `>`), so `<!channel>` or `<http://evil|x>`
inside arguments is shown, never acted on; `plain_text` objects are not parsed and need no
escaping. Both kinds first go through `app/reveal.py`: invisible and bidirectional control
characters are shown as `\u202e`-style escapes, so what a reviewer reads in Slack is what runs
(names on one line: their newlines and tabs are revealed too). Every piece is cut to Block Kit's
limits (header 150, section 3000, field 2000), and the
arguments get a fixed budget so the whole message stays far below the ~13k characters at which
Slack answers `msg_blocks_too_long`; what is cut is linked to the web inbox.

Buttons carry only the approval id: who may click, and what the click does, is read from the
database when the click arrives (so buttons survive restarts and cannot smuggle state).

Deliberate departures:
- block ids carry the rendered status (`…:pending`, `…:approved`), as Slack asks for a new block id
  when a message is updated.
- Code fences: three backticks inside an argument would close the fence early, so each run of them
  gets zero-width spaces between the backticks (it displays the same).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from app.approvals.outcomes import iso, review_url
from app.reveal import reveal
from app.store.approvals import ApprovalRow

APPROVE_ACTION: Final = "airlock_approve"
REJECT_ACTION: Final = "airlock_reject"
REJECT_CALLBACK: Final = "airlock_reject_reason"
REASON_BLOCK: Final = "airlock_reason"
REASON_INPUT: Final = "reason"

HEADER_LIMIT: Final = 150
SECTION_LIMIT: Final = 3000
FIELD_LIMIT: Final = 2000
BUTTON_VALUE_LIMIT: Final = 2000
ARGUMENTS_BUDGET: Final = 2600
"""Characters of escaped arguments shown in the message (the rest is behind the inbox link)."""
REASON_BUDGET: Final = 1000
SUMMARY_BUDGET: Final = 300
FALLBACK_LIMIT: Final = 300
REASON_MAX_LENGTH: Final = 2000

_FENCE: Final = "```"
_SLACK_USER: Final = re.compile(r"^[UW][A-Z0-9]{2,}$")
_SLACK_USERGROUP: Final = re.compile(r"^S[A-Z0-9]{2,}$")

_OUTCOME_TITLES: Final = {
    "pending": "Approval needed", "approved": "Approved", "executing": "Approved", "completed": "Approved",
    "failed": "Approved, not delivered", "outcome_unknown": "Approved, outcome unknown", "rejected": "Rejected",
    "expired": "Expired", "withdrawn": "Withdrawn",
}


@dataclass(frozen=True, slots=True)
class Message:
    """A chat message: the notification/fallback `text` (always set) and its `blocks`."""

    text: str
    blocks: list[dict[str, Any]]


def escape(text: str) -> str:
    """Untrusted text as `mrkdwn`: hidden characters revealed, then Slack's three control characters escaped."""
    return reveal(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def name(text: str) -> str:
    """An agent-chosen name (tool, agent, upstream) on one line, hidden characters revealed (not yet escaped)."""
    return reveal(text, line=True)


def cut(text: str, limit: int) -> str:
    """`text` shortened to at most `limit` characters, with an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escaped_within(text: str, limit: int) -> tuple[str, bool]:
    """Escape `text` and keep at most `limit` characters of the result without splitting an entity.

    Returns the escaped text and whether anything was left out.
    """
    pieces: list[str] = []
    used = 0
    for char in text:
        piece = escape(char)
        if used + len(piece) > limit:
            return "".join(pieces), True
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces), False


def slack_date(timestamp: float) -> str:
    """A date Slack shows in each reader's time zone, with the UTC ISO time as the fallback."""
    return f"<!date^{int(timestamp)}^{{date_short_pretty}} at {{time}}|{iso(timestamp)}>"


def approval_message(approval: ApprovalRow, public_url: str) -> Message:
    """The channel message for `approval` in its current status."""
    url = review_url(public_url, approval.id)
    blocks: list[dict[str, Any]] = [
        _header(approval),
        _fields(approval),
        *_policy(approval),
        *_arguments(approval, url),
    ]
    if approval.status == "pending":
        blocks.extend(_mentions(approval))
        blocks.append(_buttons(approval))
    else:
        blocks.append(_outcome(approval))
    blocks.append(_context(approval, f"<{escape(url)}|Open approval {escape(approval.id)} in Airlock>", "link"))
    return Message(text=fallback_text(approval), blocks=blocks)


def fallback_text(approval: ApprovalRow) -> str:
    """The message's `text`: what notifications and screen readers show (escaped mrkdwn)."""
    title = _OUTCOME_TITLES.get(approval.status, approval.status)
    if approval.status == "pending":
        line = (f"{title}: {name(approval.agent)} wants to call {name(approval.tool)} on {name(approval.upstream)} "
                f"({approval.id})")
    elif approval.decided_by and approval.status not in ("expired",):
        line = (f"{title} by {name(approval.decided_by)}: {name(approval.tool)} for {name(approval.agent)} "
                f"({approval.id})")
    else:
        line = f"{title}: {name(approval.tool)} for {name(approval.agent)} ({approval.id})"
    return escape(cut(line, FALLBACK_LIMIT))


def _block_id(approval: ApprovalRow, part: str) -> str:
    return f"{part}:{approval.id}:{approval.status}"[:255]


def _header(approval: ApprovalRow) -> dict[str, Any]:
    title = _OUTCOME_TITLES.get(approval.status, approval.status)
    return {"type": "header", "block_id": _block_id(approval, "header"),
            "text": {"type": "plain_text", "text": cut(f"{title}: {name(approval.tool)}", HEADER_LIMIT),
                     "emoji": False}}


def _field(label: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": cut(f"*{label}:*\n{value}", FIELD_LIMIT)}


def _fields(approval: ApprovalRow) -> dict[str, Any]:
    return {"type": "section", "block_id": _block_id(approval, "fields"), "fields": [
        _field("Agent", escape(cut(name(approval.agent), 200))),
        _field("Upstream", escape(cut(name(approval.upstream), 200))),
        _field("Approval", f"`{escape(approval.id)}`"),
        _field("Expires" if approval.status == "pending" else "Expiry", slack_date(approval.expires_at)),
    ]}


def _policy(approval: ApprovalRow) -> list[dict[str, Any]]:
    rule = escape(cut(name(approval.policy_rule), 200))
    text = f"*Policy:* {escape(cut(approval.policy_reason, REASON_BUDGET))} (rule `{rule}`)" \
        if approval.policy_reason else f"*Policy:* rule `{rule}`"
    return [{"type": "section", "block_id": _block_id(approval, "policy"), "text": {"type": "mrkdwn", "text": text}}]


def _arguments(approval: ApprovalRow, url: str) -> list[dict[str, Any]]:
    try:
        pretty = json.dumps(json.loads(approval.arguments), indent=2, ensure_ascii=False)
    except ValueError:
        pretty = approval.arguments
    shown, truncated = escaped_within(pretty, ARGUMENTS_BUDGET)
    shown = shown.replace(_FENCE, "`\u200b`\u200b`") + ("\u200b" if shown.endswith("`") else "")
    blocks: list[dict[str, Any]] = [{"type": "section", "block_id": _block_id(approval, "arguments"),
                                     "text": {"type": "mrkdwn", "text": f"*Arguments:*\n{_FENCE}{shown}{_FENCE}"}}]
    if truncated:
        note = (f":scissors: Arguments truncated ({len(pretty)} characters); "
                f"<{escape(url)}|see them in full in the web inbox> before deciding.")
        blocks.append(_context(approval, note, "truncated"))
    return blocks


def _mentions(approval: ApprovalRow) -> list[dict[str, Any]]:
    routing = json.loads(approval.slack_routing) if approval.slack_routing else {}
    users = [f"<@{u}>" for u in routing.get("users", []) if _SLACK_USER.match(u)]
    groups = [f"<!subteam^{g}>" for g in routing.get("usergroups", []) if _SLACK_USERGROUP.match(g)]
    if not users and not groups:
        return []
    return [_context(approval, "Reviewers: " + " ".join(users + groups), "reviewers")]


def _buttons(approval: ApprovalRow) -> dict[str, Any]:
    value = approval.id[:BUTTON_VALUE_LIMIT]
    tool = cut(name(approval.tool), 80)
    confirm = {
        "title": {"type": "plain_text", "text": "Approve this call?"},
        "text": {"type": "plain_text", "text": cut(
            f"{name(approval.agent)} will run {tool} on {name(approval.upstream)} with the arguments shown, once.",
            300)},
        "confirm": {"type": "plain_text", "text": "Approve"},
        "deny": {"type": "plain_text", "text": "Cancel"},
        "style": "primary",
    }
    return {"type": "actions", "block_id": _block_id(approval, "decide"), "elements": [
        {"type": "button", "action_id": APPROVE_ACTION, "value": value, "style": "primary",
         "text": {"type": "plain_text", "text": "Approve"}, "confirm": confirm},
        {"type": "button", "action_id": REJECT_ACTION, "value": value, "style": "danger",
         "text": {"type": "plain_text", "text": "Reject…"}},
    ]}


def _outcome(approval: ApprovalRow) -> dict[str, Any]:
    return {"type": "section", "block_id": _block_id(approval, "outcome"),
            "text": {"type": "mrkdwn", "text": cut(outcome_line(approval), SECTION_LIMIT)}}


def outcome_line(approval: ApprovalRow) -> str:
    """Who decided, when, and what came of it, as escaped mrkdwn."""
    who = escape(name(approval.decided_by or "someone"))
    via = f" via {escape(approval.decided_via)}" if approval.decided_via else ""
    when = slack_date(approval.decided_at) if approval.decided_at else "an unknown time"
    reason = f"\n*Reason:* {escape(cut(approval.decision_reason, REASON_BUDGET))}" if approval.decision_reason else ""
    status = approval.status
    if status == "expired":
        return f":hourglass: *Expired* at {slack_date(approval.expires_at)} before anyone decided. It did not run."
    if status == "withdrawn":
        return f":leftwards_arrow_with_hook: *Withdrawn* by {who} at {when}; it did not run.{reason}"
    if status == "rejected":
        return f":x: *Rejected* by {who}{via} at {when}; it did not run.{reason}"
    decided = f"*Approved* by {who}{via} at {when}"
    if status in ("approved", "executing"):
        return f":hourglass_flowing_sand: {decided}; running now.{reason}"
    if status == "completed":
        return f":white_check_mark: {decided}; ran: {escape(result_summary(approval))}{reason}"
    if status == "failed":
        detail = escape(cut(approval.outcome or "unknown error", SUMMARY_BUDGET))
        return f":warning: {decided}, but it could not be delivered to the upstream: {detail}{reason}"
    if status == "outcome_unknown":
        return (f":grey_question: {decided}, but Airlock lost track of the upstream while it ran; "
                f"it may or may not have taken effect and will not be re-sent.{reason}")
    return f"*{escape(status)}*"


def result_summary(approval: ApprovalRow) -> str:
    """A one-line summary of the stored upstream result (plain text, not yet escaped)."""
    try:
        stored = json.loads(approval.result or "{}")
    except ValueError:
        return "a result that could not be read"
    if isinstance(stored.get("error"), dict):
        error = stored["error"]
        return cut(f"the upstream answered error {error.get('code')}: {error.get('message')}", SUMMARY_BUDGET)
    result = stored.get("result")
    if not isinstance(result, dict):
        return "no result was recorded"
    if result.get("resultType") == "input_required":
        # 2026-07-28: the tool itself has not run yet (see app/approvals/continuation.py).
        return "the upstream asked the agent for input first; the agent's answer continues this approval"
    texts = [item.get("text", "") for item in result.get("content") or []
             if isinstance(item, dict) and item.get("type") == "text"]
    summary = " ".join(" ".join(texts).split()) or "an empty result"
    prefix = "the tool reported an error: " if result.get("isError") else ""
    return cut(prefix + summary, SUMMARY_BUDGET)


def _context(approval: ApprovalRow, text: str, part: str) -> dict[str, Any]:
    return {"type": "context", "block_id": _block_id(approval, part),
            "elements": [{"type": "mrkdwn", "text": cut(text, FIELD_LIMIT)}]}


def reject_modal(approval: ApprovalRow, private_metadata: str) -> dict[str, Any]:
    """The modal that asks a reviewer why they reject `approval` (submitting it rejects the call)."""
    intro = (f"Reject *{escape(cut(name(approval.tool), 200))}* for *{escape(cut(name(approval.agent), 100))}* "
             f"(`{escape(approval.id)}`)? The agent is told who rejected it and why.")
    return {
        "type": "modal", "callback_id": REJECT_CALLBACK, "private_metadata": private_metadata[:3000],
        "title": {"type": "plain_text", "text": "Reject call"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": cut(intro, SECTION_LIMIT)}},
            {"type": "input", "block_id": REASON_BLOCK, "label": {"type": "plain_text", "text": "Reason"},
             "element": {"type": "plain_text_input", "action_id": REASON_INPUT, "multiline": True,
                         "min_length": 1, "max_length": REASON_MAX_LENGTH}},
        ],
    }
